"""The event bus on a real Redis: order, resume without gap or duplicate,
stream.reset, one terminal event, slow subscribers, lost connections."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from adapters.redis.client import create_listener, create_redis
from adapters.redis.events import RedisEventBus, stream_key
from domain.errors import SubscriptionClosedError
from domain.events import EventType, StoredEvent, StreamRef, TaskEvent
from domain.ports import Subscription
from entrypoints.devstack.redis import EmbeddedRedis
from entrypoints.devstack.services import Services
from tests.redis_cluster import standalone_redis


def _events(workspace: uuid.UUID, task: uuid.UUID, tokens: int) -> list[TaskEvent]:
    return [
        TaskEvent(workspace, task, EventType.QUEUED),
        TaskEvent(workspace, task, EventType.STARTED, {"attempt": 1}),
        *(TaskEvent(workspace, task, EventType.TOKEN, {"text": f"t{i} "}) for i in range(tokens)),
        TaskEvent(workspace, task, EventType.SUCCEEDED, {"result": {"text": "done"}}),
    ]


async def _drain(subscription: Subscription, timeout_s: float = 2.0) -> list[StoredEvent]:
    """Events until the terminal one (or a quiet `timeout_s`)."""
    seen: list[StoredEvent] = []
    while (event := await subscription.next(timeout_s)) is not None:
        seen.append(event)
        if event.event.type.terminal:
            break
    return seen


def _kinds(events: list[StoredEvent]) -> list[tuple[str, object]]:
    return [(e.event.type.value, e.event.data.get("text")) for e in events]


async def test_a_task_stream_replays_from_its_start_then_goes_live(bus: RedisEventBus) -> None:
    workspace, task = uuid.uuid4(), uuid.uuid4()
    events = _events(workspace, task, 5)
    await bus.publish(*events[:3])
    async with bus.subscribe(StreamRef(workspace, task), None) as subscription:
        first = [await subscription.next(2) for _ in range(3)]
        await bus.publish(*events[3:])
        rest = await _drain(subscription)
    seen = [e for e in first if e is not None] + rest
    assert _kinds(seen) == [(e.type.value, e.data.get("text")) for e in events]
    ids = [e.id for e in seen]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))), "ids must grow"
    assert len(set(ids)) == len(ids)


async def test_workspace_stream_has_every_task_with_the_same_ids(bus: RedisEventBus) -> None:
    workspace, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with bus.subscribe(StreamRef(workspace), None) as subscription:
        await bus.publish(*_events(workspace, first, 1), *_events(workspace, second, 1))
        seen = [await subscription.next(2) for _ in range(8)]
    assert all(e is not None for e in seen)
    assert [e.event.task_id for e in seen if e] == [first] * 4 + [second] * 4
    async with bus.subscribe(StreamRef(workspace, second), None) as subscription:
        replay = await _drain(subscription)
    assert [e.id for e in replay] == [e.id for e in seen[4:] if e]


async def test_another_workspace_never_sees_the_events(bus: RedisEventBus) -> None:
    mine, theirs, task = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with bus.subscribe(StreamRef(theirs), None) as subscription:
        await bus.publish(*_events(mine, task, 2))
        assert await subscription.next(0.5) is None
    async with bus.subscribe(StreamRef(theirs, task), None) as subscription:
        assert await subscription.next(0.3) is None


async def test_a_second_terminal_event_is_dropped(bus: RedisEventBus, redis: Redis) -> None:
    workspace, task = uuid.uuid4(), uuid.uuid4()
    await bus.publish(*_events(workspace, task, 1))
    await bus.publish(TaskEvent(workspace, task, EventType.FAILED, {"error": "late"}))
    await bus.publish(TaskEvent(workspace, task, EventType.CANCELLED))
    entries = await redis.xrange(stream_key(StreamRef(workspace, task)))
    assert len(entries) == 4
    async with bus.subscribe(StreamRef(workspace, task), None) as subscription:
        seen = await _drain(subscription, 0.5)
        assert await subscription.next(0.3) is None
    assert [e.event.type for e in seen][-1] is EventType.SUCCEEDED


async def test_resume_at_random_points_has_no_gap_and_no_duplicate(bus: RedisEventBus) -> None:
    workspace, task = uuid.uuid4(), uuid.uuid4()
    events = _events(workspace, task, 60)
    publisher = asyncio.create_task(_publish_slowly(bus, events))
    rng = random.Random(7)
    received: list[StoredEvent] = []
    last: str | None = None
    while not received or not received[-1].event.type.terminal:
        async with bus.subscribe(StreamRef(workspace, task), last) as subscription:
            for _ in range(rng.randint(1, 9)):
                event = await subscription.next(3)
                assert event is not None, "a live event did not arrive"
                received.append(event)
                last = event.id
                if event.event.type.terminal:
                    break
    await publisher
    assert _kinds(received) == [(e.type.value, e.data.get("text")) for e in events]


async def _publish_slowly(bus: RedisEventBus, events: list[TaskEvent]) -> None:
    for event in events:
        await bus.publish(event)
        await asyncio.sleep(0.003)


async def test_resume_older_than_retained_starts_with_a_reset(
    bus: RedisEventBus, redis: Redis
) -> None:
    workspace, task = uuid.uuid4(), uuid.uuid4()
    await bus.publish(*_events(workspace, task, 20))
    key = stream_key(StreamRef(workspace, task))
    first_id = (await redis.xrange(key, count=1))[0][0].decode()
    await redis.xtrim(key, maxlen=5, approximate=False)
    async with bus.subscribe(StreamRef(workspace, task), first_id) as subscription:
        seen = await _drain(subscription)
    assert seen[0].event.type is EventType.RESET
    assert seen[0].event.data["last_event_id"] == first_id
    assert len(seen) == 6
    assert seen[-1].event.type is EventType.SUCCEEDED

    await redis.delete(key)  # retention over: the whole stream expired
    async with bus.subscribe(StreamRef(workspace, task), seen[-1].id) as subscription:
        reset = await subscription.next(1)
    assert reset is not None
    assert reset.event.type is EventType.RESET


async def test_a_subscriber_that_falls_behind_is_closed_not_buffered(services: Services) -> None:
    client, listener = (
        create_redis(services.redis_url, cluster=services.redis_cluster),
        create_listener(services.redis_url, cluster=services.redis_cluster),
    )
    bus = RedisEventBus(client, listener, buffer=10)
    workspace, task = uuid.uuid4(), uuid.uuid4()
    try:
        async with bus.subscribe(StreamRef(workspace), None) as subscription:
            await bus.publish(*_events(workspace, task, 30))
            await asyncio.sleep(0.5)  # the reader delivers; nobody consumes
            with pytest.raises(SubscriptionClosedError, match="fell behind"):
                await subscription.next(1)
    finally:
        await bus.close()
        await client.aclose()
        await listener.aclose()


async def test_drain_closes_every_subscription(bus: RedisEventBus) -> None:
    workspace = uuid.uuid4()
    async with bus.subscribe(StreamRef(workspace), None) as subscription:
        waiting = asyncio.create_task(subscription.next(10))
        await asyncio.sleep(0.05)
        bus.drain()
        with pytest.raises(SubscriptionClosedError, match="shutting down"):
            await waiting
    with pytest.raises(SubscriptionClosedError):
        async with bus.subscribe(StreamRef(workspace), None):
            pass


@standalone_redis  # CLIENT KILL of the one server's pub/sub connection
async def test_killing_the_pubsub_connection_loses_nothing(
    bus: RedisEventBus, redis: Redis
) -> None:
    workspace, task = uuid.uuid4(), uuid.uuid4()
    events = _events(workspace, task, 10)
    async with bus.subscribe(StreamRef(workspace, task), None) as subscription:
        await bus.publish(*events[:2])
        assert [await subscription.next(2) for _ in range(2)]
        killed = await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert killed >= 1
        await bus.publish(*events[2:])  # published while the fan-out reconnects
        rest = await _drain(subscription, 5)
    assert len(rest) == len(events) - 2
    assert rest[-1].event.type is EventType.SUCCEEDED


async def test_redis_restart_recovers_within_five_seconds(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, persist=True)
    url = server.start()
    client, listener = create_redis(url), create_listener(url)
    bus = RedisEventBus(client, listener)
    workspace, task = uuid.uuid4(), uuid.uuid4()
    events = _events(workspace, task, 4)
    try:
        async with bus.subscribe(StreamRef(workspace, task), None) as subscription:
            await bus.publish(*events[:2])
            before = [await subscription.next(2) for _ in range(2)]
            assert all(before)
            server.stop()
            server.start()  # the append-only file brings the streams back
            loop = asyncio.get_running_loop()
            restarted = loop.time()
            await bus.publish(*events[2:])
            rest = await _drain(subscription, 5)
            assert loop.time() - restarted < 5
        assert [e.event.type for e in rest] == [e.type for e in events[2:]]
    finally:
        await bus.close()
        await client.aclose()
        await listener.aclose()
        server.stop()


async def test_an_unreadable_entry_is_skipped_and_live_events_go_on(
    bus: RedisEventBus, redis: Redis
) -> None:
    """E.g. an event type a newer worker wrote during a rolling deploy."""
    workspace, task = uuid.uuid4(), uuid.uuid4()
    async with bus.subscribe(StreamRef(workspace), None) as subscription:
        await redis.xadd(stream_key(StreamRef(workspace)), {"e": b'{"type": "task.unknown"}'})
        await bus.publish(*_events(workspace, task, 1))
        seen = [await subscription.next(2) for _ in range(4)]
    assert [e.event.type for e in seen if e] == [e.type for e in _events(workspace, task, 1)]
