"""What the bus cannot take is kept and sent in order once it answers; beyond
the bound the oldest are dropped and their task streams get a stream.reset
(application/events/backlog.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest

from application.events import EventBacklog
from domain.events import EventType, StreamRef, TaskEvent
from tests.fakes import InMemoryEventBus

WORKSPACE = uuid.uuid4()


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "not within 10 s"
        await asyncio.sleep(0.01)


def _events(task: uuid.UUID, *types: EventType) -> list[TaskEvent]:
    return [TaskEvent(WORKSPACE, task, kind, {"n": n}) for n, kind in enumerate(types)]


def _seen(bus: InMemoryEventBus, task: uuid.UUID) -> list[tuple[EventType, object]]:
    return [
        (stored.event.type, stored.event.data.get("n", stored.event.data.get("reason")))
        for stored in bus.streams.get(StreamRef(WORKSPACE, task), [])
    ]


async def test_events_published_while_the_bus_is_away_arrive_in_order() -> None:
    bus, task = InMemoryEventBus(), uuid.uuid4()
    backlog = EventBacklog(bus)
    first, *rest = _events(task, EventType.QUEUED, EventType.STARTED, EventType.PROGRESS)
    await backlog.publish(first)
    bus.down = True
    await backlog.publish(rest[0])
    assert backlog.kept == 1
    bus.down = False
    await backlog.publish(rest[1])  # queues behind what is kept, though the bus is back
    await _until(lambda: backlog.kept == 0)
    assert _seen(bus, task) == [
        (EventType.QUEUED, 0),
        (EventType.STARTED, 1),
        (EventType.PROGRESS, 2),
    ]
    await backlog.publish(*_events(task, EventType.SUCCEEDED))
    assert backlog.kept == 0, "straight to the bus again"
    await backlog.close()


async def test_beyond_the_bound_the_oldest_go_and_their_stream_says_reset() -> None:
    bus, lossy, intact = InMemoryEventBus(), uuid.uuid4(), uuid.uuid4()
    backlog = EventBacklog(bus, bound=3)
    bus.down = True
    for event in _events(lossy, *[EventType.TOKEN] * 4):
        await backlog.publish(event)
    await backlog.publish(*_events(intact, EventType.QUEUED))
    assert backlog.kept == 3
    bus.down = False
    await _until(lambda: backlog.kept == 0)
    assert _seen(bus, lossy) == [
        (EventType.RESET, "events lost"),
        (EventType.TOKEN, 2),
        (EventType.TOKEN, 3),
    ]
    assert _seen(bus, intact) == [(EventType.QUEUED, 0)], "no reset for a stream that lost nothing"
    await backlog.close()


async def test_closing_sends_what_it_can_and_reports_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus, task = InMemoryEventBus(), uuid.uuid4()
    backlog = EventBacklog(bus)
    bus.down = True
    await backlog.publish(*_events(task, EventType.QUEUED))
    await backlog.close(deadline_s=0.2)
    assert "1 task events not published" in caplog.text
    assert _seen(bus, task) == []
