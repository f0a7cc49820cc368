"""1,000 SSE clients on one API process: one Redis subscription serves them
all, every client gets every event, and closing them leaks nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from adapters.redis.client import MAX_CONNECTIONS
from adapters.redis.events import LISTENERS, RedisEventBus
from domain.events import EventType, TaskEvent
from domain.ports import EventBus
from entrypoints.api import make_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.conftest import People
from tests.live import messages, serving

pytestmark = pytest.mark.slow  # a load scenario: 1,000 streams: `pytest -m slow`

CLIENTS = 1000


async def _clients(redis: Redis, kind: str | None = None) -> int:
    return len(await redis.client_list(_type=kind))


async def test_a_thousand_streams_share_one_subscription_and_leak_nothing(
    settings: Settings, people: People, redis: Redis
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    settings = msgspec.structs.replace(settings, sse_streams_per_user=CLIENTS + 10)
    container = make_container(settings)
    app = create_app(settings, container)
    bus = await container.get(EventBus)
    assert isinstance(bus, RedisEventBus)
    url = f"/v1/workspaces/{workspace}/events"
    async with serving(settings, app) as base:
        limits = httpx.Limits(max_connections=CLIENTS + 10, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            await _status_ok(http, url, owner.headers)  # warm: the bus and its connections
            listeners_before, tasks_before = LISTENERS._value.get(), len(asyncio.all_tasks())
            redis_before, pubsub_before = await _clients(redis), await _clients(redis, "pubsub")
            async with AsyncExitStack() as streams:
                responses = await asyncio.gather(
                    *(
                        streams.enter_async_context(http.stream("GET", url, headers=owner.headers))
                        for _ in range(CLIENTS)
                    )
                )
                bad = [await r.aread() for r in responses if r.status_code != 200][:2]
                assert {r.status_code for r in responses} == {200}, bad
                await _until(lambda: LISTENERS._value.get() == listeners_before + CLIENTS)
                # Bounded by the pools' size (commands, cache, rate limits), whatever
                # the number of streams.
                assert await _clients(redis) - redis_before <= 3 * MAX_CONNECTIONS
                assert await _clients(redis, "pubsub") - pubsub_before <= 1, "one per process"
                task = uuid.uuid4()
                await bus.publish(TaskEvent(workspace, task, EventType.STARTED, {"attempt": 1}))
                received = await asyncio.gather(*(_first_event(r) for r in responses))
                assert {m for m in received} == {"task.started"}
            await _until(lambda: LISTENERS._value.get() == listeners_before)
            await _until(
                lambda: len(asyncio.all_tasks()) <= tasks_before + 2,
                lambda: "\n".join(sorted({repr(t.get_coro()) for t in asyncio.all_tasks()})),
            )
            assert bus._hub._groups == {}, "a subscription outlived its stream"


async def _status_ok(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200


async def _first_event(response: httpx.Response) -> str | None:
    async for message in messages(response):
        if message.event:
            return message.event
    return None


async def _until(
    check: Callable[[], bool],
    explain: Callable[[], str] = lambda: f"listeners: {LISTENERS._value.get()}",
    timeout_s: float = 30,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        assert loop.time() < deadline, f"condition not met in time; {explain()}"
        await asyncio.sleep(0.05)
