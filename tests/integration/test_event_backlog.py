"""Task events published while Redis does not take writes reach a stream
opened before, all of them and in order, when it does again (application/events/
backlog.py in front of the Redis bus, as the processes have it).

At least once: a stalled Redis may still run a publish whose answer timed
out, after the stall, and the backlog sends it again; such a repeat is an
exact copy of an event already received, never a new one out of order."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from adapters.redis.events import RedisEventBus
from application.events import EventBacklog
from domain.events import EventType, StreamRef, TaskEvent
from tests.redis_cluster import standalone_redis

TYPES = [EventType.QUEUED, EventType.STARTED, EventType.PROGRESS, EventType.SUCCEEDED]


@standalone_redis  # CLIENT PAUSE of the one server
async def test_events_kept_during_a_stall_arrive_in_order_once(
    bus: RedisEventBus, redis: Redis
) -> None:
    workspace, task = uuid.uuid4(), uuid.uuid4()
    backlog = EventBacklog(bus)
    async with bus.subscribe(StreamRef(workspace, task), None) as subscription:
        await redis.execute_command("CLIENT", "PAUSE", "3000", "WRITE")
        try:
            for n, kind in enumerate(TYPES):
                await backlog.publish(TaskEvent(workspace, task, kind, {"n": n}))
            assert backlog.kept == len(TYPES), "nothing got through a paused Redis"
        finally:
            await redis.execute_command("CLIENT", "UNPAUSE")
        received: list[tuple[EventType, int]] = []
        while len(set(received)) < len(TYPES):
            stored = await subscription.next(10)
            assert stored is not None, f"only {received} arrived"
            received.append((stored.event.type, stored.event.data["n"]))
        first_arrivals = list(dict.fromkeys(received))
        assert first_arrivals == [(kind, n) for n, kind in enumerate(TYPES)]
    await backlog.close()
    assert backlog.kept == 0
