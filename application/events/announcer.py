"""One task attempt's events, published in order by the worker's use case
(RunTask): the first without waiting for it, each later one after it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from application.events.publishing import publish
from domain.entities import TaskRef
from domain.events import EventType, TaskEvent
from domain.ports import EventPublisher

logger = logging.getLogger("keel.tasks")


class Announcer:
    """One attempt's events, published in order: `start` sends one without
    waiting for it, and every later publish waits for it first."""

    def __init__(self, events: EventPublisher, ref: TaskRef) -> None:
        self._events, self._ref = events, ref
        self._pending: asyncio.Future[None] | None = None

    def start(self, type_: EventType, **data: Any) -> None:
        self._pending = asyncio.ensure_future(publish(self._events, self._event(type_, data)))

    async def emit(self, type_: EventType, **data: Any) -> None:
        await self.publish(self._event(type_, data))

    async def publish(self, *events: TaskEvent) -> None:
        await self.settle()
        await publish(self._events, *events)

    async def settle(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            await pending
        except Exception:
            # `publish` only lets a bug through; the events after it still go out.
            logger.exception("task %s: an event was not published", self._ref.task_id)

    def _event(self, type_: EventType, data: dict[str, Any]) -> TaskEvent:
        return TaskEvent(self._ref.workspace_id, self._ref.task_id, type_, data)
