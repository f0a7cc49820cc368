"""The task rate limit is one budget per user for every API process: the count
is one atomic step in Redis (adapters/redis/rate_limit.py), so requests racing
through separate processes, each with its own connections, cannot pass it
together."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from adapters.redis.client import RedisClient, create_redis
from adapters.redis.rate_limit import PREFIX, RedisRateLimit
from domain.errors import RateLimitedError
from domain.ports import Quota, RateLimit
from entrypoints.devstack.services import Services
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.redis_cluster import standalone_redis

LIMIT = 5


@pytest.fixture
async def processes(services: Services) -> AsyncIterator[list[RedisRateLimit]]:
    """The limit as three API processes have it: a client (and pool) each."""
    clients = [create_redis(services.redis_url, cluster=services.redis_cluster) for _ in range(3)]
    limits = [RedisRateLimit.on(client, services.redis_url, LIMIT) for client in clients]
    yield limits
    for limit, client in zip(limits, clients, strict=True):
        await limit.aclose()
        await client.aclose()


async def _take(limit: RedisRateLimit, subject: str) -> Quota | RateLimitedError:
    try:
        return await limit.take(subject)
    except RateLimitedError as refused:
        return refused


async def test_racing_processes_share_one_budget(processes: list[RedisRateLimit]) -> None:
    subject = f"user:{uuid.uuid4()}"
    answers = await asyncio.gather(
        *(_take(processes[i % len(processes)], subject) for i in range(4 * LIMIT))
    )
    taken = [answer for answer in answers if isinstance(answer, Quota)]
    refused = [answer for answer in answers if isinstance(answer, RateLimitedError)]
    assert len(taken) == LIMIT, "exactly the budget, whichever process counted"
    # Remaining is read after the count: racing requests may see each other's.
    assert all(0 <= quota.remaining < LIMIT for quota in taken)
    assert len(refused) == 3 * LIMIT
    assert all(error.limit == LIMIT and 0 < error.retry_after_s <= 60 for error in refused)
    # Another user's budget is their own.
    assert (await processes[0].take(f"user:{uuid.uuid4()}")).remaining == LIMIT - 1


async def test_a_refusal_is_not_counted(processes: list[RedisRateLimit]) -> None:
    subject = f"user:{uuid.uuid4()}"
    for _ in range(LIMIT):
        await processes[0].take(subject)
    for limit in processes:
        with pytest.raises(RateLimitedError):
            await limit.take(subject)
    # The window holds LIMIT entries, not LIMIT + the refusals.
    stats = await processes[1]._limiter.get_window_stats(processes[1]._item, subject)
    assert stats.remaining == 0


@standalone_redis
async def test_the_api_counts_on_the_containers_redis_under_its_prefix(
    settings: Settings, redis: RedisClient
) -> None:
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        container = app.state.dishka_container
        limit = client.blocking_portal.call(container.get, RateLimit)
        ours = client.blocking_portal.call(container.get, RedisClient)
        assert isinstance(limit, RedisRateLimit)
        assert limit._own_client is None, "no client of its own on one Redis"
        storage = limit._limiter.storage
        assert storage.bridge.get_connection().connection_pool is ours.connection_pool  # type: ignore[attr-defined]
        subject = f"user:{uuid.uuid4()}"
        client.blocking_portal.call(limit.take, subject)
    keys = [key async for key in redis.scan_iter(match=f"{PREFIX}:*{subject}*")]
    assert len(keys) == 1
