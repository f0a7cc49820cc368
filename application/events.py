"""Live task events for browsers: stream tickets, and opening an event stream.

Opening checks, once, what every request checks (the caller is a member, the
task is in the workspace) and takes one of the user's open-stream slots. The
feed then replays and follows the stream, and yields None whenever nothing
happened for a heartbeat period. A task's feed ends after its terminal event;
when the task had already ended but its stream lost that event (Redis
restarted empty), the feed ends with the terminal state read from Postgres.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from application.access import current_workspace
from application.caching import cached_role
from domain.entities import Task, TaskStatus
from domain.errors import NotFoundError, RateLimitedError
from domain.events import (
    EventType,
    StoredEvent,
    StreamGrant,
    StreamRef,
    TaskEvent,
    check_position,
)
from domain.ports import Cache, EventBus, OpenStreams, StreamTickets, UnitOfWork

TICKET_TTL_S = 60.0
_ENDINGS = {
    TaskStatus.SUCCEEDED: EventType.SUCCEEDED,
    TaskStatus.FAILED: EventType.FAILED,
    TaskStatus.CANCELLED: EventType.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class StreamLimits:
    heartbeat_s: float = 15.0
    per_user: int = 20
    ended_grace_s: float = 1.0  # how long a finished task's feed waits for its terminal event


class IssueStreamTicket:
    def __init__(self, uow: UnitOfWork, cache: Cache, tickets: StreamTickets) -> None:
        self._uow, self._cache, self._tickets = uow, cache, tickets

    async def execute(self, task_id: UUID | None) -> tuple[str, StreamGrant]:
        await cached_role(self._uow, self._cache)
        workspace_id = current_workspace(self._uow)
        if task_id is not None:
            await _task(self._uow, workspace_id, task_id)
        expires_at = datetime.now(UTC) + timedelta(seconds=TICKET_TTL_S)
        grant = StreamGrant(self._uow.caller.user_id, workspace_id, task_id, expires_at)
        return await self._tickets.issue(grant), grant


async def _task(uow: UnitOfWork, workspace_id: UUID, task_id: UUID) -> Task:
    async with uow:
        task = await uow.tasks.get(workspace_id, task_id)
    if task is None:
        raise NotFoundError("task not found")
    return task


class OpenEventStream:
    def __init__(
        self,
        uow: UnitOfWork,
        cache: Cache,
        bus: EventBus,
        slots: OpenStreams,
        limits: StreamLimits,
    ) -> None:
        self._uow, self._cache, self._bus, self._slots = uow, cache, bus, slots
        self._limits = limits

    async def execute(
        self, task_id: UUID | None, after: str | None, grant: StreamGrant | None = None
    ) -> AsyncIterator[StoredEvent | None]:
        """The feed of the workspace's (or one task's) events after `after`.

        `grant`, when the caller came with a stream ticket, must allow this
        stream. Raises NotFoundError (not a member, no such task, a ticket for
        another stream) or RateLimitedError (the user has too many streams open).
        """
        workspace_id, after = current_workspace(self._uow), check_position(after)
        stream = StreamRef(workspace_id, task_id)
        if grant is not None and not grant.allows(stream):
            raise NotFoundError("this ticket does not open that stream")
        await cached_role(self._uow, self._cache)
        task = await _task(self._uow, workspace_id, task_id) if task_id is not None else None
        user_id = self._uow.caller.user_id
        lapse_s = 3 * self._limits.heartbeat_s
        slot = await self._slots.acquire(user_id, self._limits.per_user, lapse_s)
        if slot is None:
            raise RateLimitedError(
                f"at most {self._limits.per_user} event streams may be open per user",
                retry_after_s=int(self._limits.heartbeat_s),
            )
        return self._feed(stream, after, task, user_id, slot)

    async def _feed(
        self, stream: StreamRef, after: str | None, task: Task | None, user_id: UUID, slot: str
    ) -> AsyncIterator[StoredEvent | None]:
        lapse_s = 3 * self._limits.heartbeat_s
        ended = task is not None and task.status in _ENDINGS
        last_id = after or "0-0"
        try:
            async with self._bus.subscribe(stream, after) as subscription:
                while True:
                    wait_s = self._limits.ended_grace_s if ended else self._limits.heartbeat_s
                    event = await subscription.next(wait_s)
                    if event is None and ended:
                        assert task is not None
                        yield _ending(task, last_id)
                        return
                    if event is None:
                        await self._slots.renew(user_id, slot, lapse_s)
                        if task is not None:
                            # Quiet for a heartbeat: has the task ended while
                            # the bus lost its terminal event?
                            task = await _task(self._uow, task.workspace_id, task.id)
                            ended = task.status in _ENDINGS
                        yield None
                        continue
                    last_id = event.id
                    yield event
                    if stream.task_id is not None and event.event.type.terminal:
                        return
        finally:
            # Released from its own task: a cancelled stream (the client went
            # away) must not cancel the release too.
            release = asyncio.ensure_future(self._slots.release(user_id, slot))
            release.add_done_callback(lambda done: done.cancelled() or done.exception())


def _ending(task: Task, last_id: str) -> StoredEvent:
    """The terminal event of a task that ended without one in its stream."""
    data: dict[str, object] = {}
    if task.status is TaskStatus.SUCCEEDED:
        data = {"result": task.result}
    elif task.status is TaskStatus.FAILED:
        data = {"error": task.error}
    event = TaskEvent(task.workspace_id, task.id, _ENDINGS[task.status], data)
    return StoredEvent(last_id, event)
