"""Task events the bus could not take, kept and sent in order once it answers.

An EventPublisher in front of the bus. While Redis is away, what a process
publishes is kept here, in order, and sent as soon as the bus takes it again;
events published meanwhile queue behind the kept ones, so every stream keeps
the order its events were published in. At most `bound` events are kept:
beyond it the oldest are dropped, and every task stream that lost some gets a
`stream.reset` ahead of what is sent (`{"reason": "events lost"}`), so its
subscribers know to read the task again instead of missing a step silently.

What is kept lives in this process: a process that dies before Redis answers
loses it (a task's stream still ends, from the database's state). Sending is
at least once: a batch whose answer was lost is sent again, and a second
terminal event of a task is dropped by the bus itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from uuid import UUID

from domain.errors import UnavailableError
from domain.events import EventType, TaskEvent
from domain.ports import EventPublisher

logger = logging.getLogger("keel.events")

LOST = {"reason": "events lost"}


class EventBacklog:
    CHUNK = 500
    FIRST_WAIT_S = 0.05
    MOST_WAIT_S = 2.0

    def __init__(self, bus: EventPublisher, bound: int = 10_000) -> None:
        self._bus, self._bound = bus, bound
        self._kept: deque[tuple[int, TaskEvent]] = deque()
        self._numbers = itertools.count()
        self._lost: dict[tuple[UUID, UUID], None] = {}  # task streams, in order of loss
        self._sender: asyncio.Task[None] | None = None

    @property
    def kept(self) -> int:
        return len(self._kept)

    async def publish(self, *events: TaskEvent) -> None:
        if not self._kept and not self._lost:
            try:
                await self._bus.publish(*events)
                return
            except UnavailableError as error:
                logger.warning("event bus unavailable (%s): keeping events", error.detail)
        self._keep(events)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(
                self._send(), name="keel-event-backlog"
            )

    def _keep(self, events: tuple[TaskEvent, ...]) -> None:
        self._kept.extend((next(self._numbers), event) for event in events)
        while len(self._kept) > self._bound:
            _, dropped = self._kept.popleft()
            if dropped.task_id is not None:
                self._lost[(dropped.workspace_id, dropped.task_id)] = None

    async def _send(self) -> None:
        wait = self.FIRST_WAIT_S
        while self._kept or self._lost:
            resets = [
                TaskEvent(workspace, task, EventType.RESET, LOST)
                for workspace, task in itertools.islice(self._lost, self.CHUNK)
            ]
            chunk = list(itertools.islice(self._kept, self.CHUNK - len(resets)))
            try:
                await self._bus.publish(*resets, *(event for _, event in chunk))
            except UnavailableError:
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.MOST_WAIT_S)
                continue
            wait = self.FIRST_WAIT_S
            for reset in resets:
                assert reset.task_id is not None
                self._lost.pop((reset.workspace_id, reset.task_id), None)
            last = chunk[-1][0] if chunk else -1
            while self._kept and self._kept[0][0] <= last:
                self._kept.popleft()
        logger.info("event bus available again: kept events sent")

    async def close(self, deadline_s: float = 2.0) -> None:
        """Send what is kept for up to `deadline_s`, then give the rest up (logged)."""
        if self._sender is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._sender), deadline_s)
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._kept or self._lost:
            logger.error(
                "closing with %d task events not published (Redis unreachable)", len(self._kept)
            )
