"""A Redis Cluster master dies (SIGKILL) under the cache and the event bus:
its replica takes over (cluster-node-timeout 1 s, tests/redis_cluster.py) and
Keel's clients find the new master by themselves, with no restart.

Slow (a cluster of its own, and a failover): `pytest -m slow`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.exceptions import RedisError

from adapters.redis.cache import RedisCache
from adapters.redis.client import create_listener, create_redis
from adapters.redis.events import RedisEventBus
from domain.cache import CacheKey, Hit
from domain.errors import UnavailableError
from domain.events import EventType, StreamRef, TaskEvent
from tests.redis_cluster import RedisClusterProcesses

pytestmark = pytest.mark.slow

GIVE_UP_S = 60.0


@pytest.fixture
async def keel(
    own_cluster: RedisClusterProcesses,
) -> AsyncIterator[tuple[RedisCache, RedisEventBus]]:
    """The cache and the event bus as the app builds them, on the cluster."""
    url = own_cluster.url
    cached = create_redis(url, cluster=True, timeout_s=0.05, retries=0)
    client, listener = create_redis(url, cluster=True), create_listener(url, cluster=True)
    bus = RedisEventBus(client, listener)
    yield RedisCache(cached), bus
    await bus.close()
    for each in (cached, client, listener):
        await each.aclose()


async def _until(what: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
    """`attempt()`'s first truthy answer, retried while the cluster fails over."""
    deadline = time.monotonic() + GIVE_UP_S
    while True:
        try:
            if answer := await attempt():
                return answer
        except (RedisError, OSError, UnavailableError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {GIVE_UP_S:.0f} s of the failover")
        await asyncio.sleep(0.1)


async def test_a_dead_master_is_replaced_and_the_cache_and_live_events_go_on(
    own_cluster: RedisClusterProcesses, keel: tuple[RedisCache, RedisEventBus]
) -> None:
    cache, bus = keel
    workspace, task = uuid.uuid4(), uuid.uuid4()
    key = CacheKey(workspace, "members", "failover")

    async def load(value: str) -> str:
        return value

    assert await cache.get_or_set(key, lambda: load("before"), type_=str, ttl_s=60) == "before"
    [hit] = await cache.peek((key, str))
    assert hit == Hit("before"), "cached on the slot's master"

    async with bus.subscribe(StreamRef(workspace), None) as subscription:
        await bus.publish(TaskEvent(workspace, task, EventType.QUEUED))
        first = await subscription.next(5)
        assert first is not None
        assert first.event.type is EventType.QUEUED

        stream = f"keel:{{ws:{workspace}}}:events"
        dead = own_cluster.master_of(stream)
        own_cluster.kill(dead)

        await _until(
            "a replica promoted", lambda: asyncio.to_thread(own_cluster.promoted, stream, dead)
        )

        # The cache answers all along (its loader, when Redis does not); it
        # caches again once the client has found the new master.
        async def cached_again() -> bool:
            await cache.invalidate(workspace, "members")
            await cache.get_or_set(key, lambda: load("after"), type_=str, ttl_s=60)
            [found] = await cache.peek((key, str))
            return found is not None and found.value == "after"

        await _until("the cache storing again", cached_again)

        # The subscription opened before the failover gets what is published after it.
        started = TaskEvent(workspace, task, EventType.STARTED, {"attempt": 1})

        async def published() -> bool:
            await bus.publish(started)
            return True

        await _until("a publish", published)
        seen = await _until("the live event", lambda: subscription.next(1))
        assert seen.event.type is EventType.STARTED
