"""Live task events for browsers: stream tickets, and opening an event stream.

Opening checks, once, what every request checks (the caller is a member, the
task is in the workspace) and takes one of the user's open-stream slots. The
feed then replays and follows the stream, and yields None whenever nothing
happened for a heartbeat period. A task's feed ends after its terminal event
(unless a replay of the task follows it in the stream: then after the next);
when the task had already ended but its stream lost that event (Redis
restarted empty), the terminal event is published again from Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from application.access import current_workspace
from application.caching import cached_role
from application.retrying import retried
from domain.entities import Task, TaskStatus
from domain.errors import NotFoundError, RateLimitedError, StreamEndedError, UnavailableError
from domain.events import (
    EventType,
    StoredEvent,
    StreamGrant,
    StreamRef,
    TaskEvent,
    check_position,
    position,
)
from domain.ports import Cache, EventBus, EventPublisher, OpenStreams, StreamTickets, UnitOfWork

logger = logging.getLogger("keel.events")
TICKET_TTL_S = 60.0
SLOT_LEASE_S = 10.0  # an open stream's slot lapses this long after its last renewal
SLOT_RENEW_S = 3.0
SLOT_UNTIL_START_S = 1.0  # a slot taken for a stream that has not started yet
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
    tickets_per_user: int = 100  # unused tickets one user may hold (each lives TICKET_TTL_S)


async def publish(events: EventPublisher, *changes: TaskEvent, deadline_s: float = 2.0) -> None:
    """Publish state changes that already committed, retrying for up to `deadline_s`.

    A bus that stays unreachable only loses the events (logged): the change
    stands, and a task's stream still ends, from the database's state.
    """
    try:
        await retried(lambda: events.publish(*changes), deadline_s=deadline_s)
    except UnavailableError as error:
        kinds = ", ".join(sorted({change.type.value for change in changes}))
        logger.warning("%s task event(s) (%s) not published: %s", len(changes), kinds, error.detail)


class IssueStreamTicket:
    """A stream ticket for the caller. Raises NotFoundError (not a member, no
    such task) or RateLimitedError when the caller holds as many unused
    tickets as one user may (each lapses after TICKET_TTL_S)."""

    def __init__(
        self, uow: UnitOfWork, cache: Cache, tickets: StreamTickets, limits: StreamLimits
    ) -> None:
        self._uow, self._cache, self._tickets = uow, cache, tickets
        self._per_user = limits.tickets_per_user

    async def execute(self, task_id: UUID | None) -> tuple[str, StreamGrant]:
        await cached_role(self._uow, self._cache)
        workspace_id = current_workspace(self._uow)
        if task_id is not None:
            await _task(self._uow, workspace_id, task_id)
        expires_at = datetime.now(UTC) + timedelta(seconds=TICKET_TTL_S)
        grant = StreamGrant(self._uow.caller.user_id, workspace_id, task_id, expires_at)
        ticket = await self._tickets.issue(grant, self._per_user)
        if ticket is None:
            raise RateLimitedError(
                f"at most {self._per_user} unused stream tickets may be held per user",
                retry_after_s=int(TICKET_TTL_S),
                limit=self._per_user,
            )
        return ticket, grant


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
    ) -> Feed:
        """The feed of the workspace's (or one task's) events after `after`.

        `grant`, when the caller came with a stream ticket, must allow this
        stream. Raises NotFoundError (not a member, no such task, a ticket for
        another stream), RateLimitedError (the user has too many streams open)
        or StreamEndedError (the client already has the task's terminal event).
        Reading the feed raises NotFoundError once the caller is no longer a
        member: checked before each batch of events it delivers (after they
        were published) and every heartbeat period.
        """
        workspace_id, after = current_workspace(self._uow), check_position(after)
        stream = StreamRef(workspace_id, task_id)
        if grant is not None and not grant.allows(stream):
            raise NotFoundError("this ticket does not open that stream")
        await cached_role(self._uow, self._cache)
        task = await _task(self._uow, workspace_id, task_id) if task_id is not None else None
        if task is not None and task.status in _ENDINGS and after is not None:
            newest = await self._bus.newest(stream)
            if newest and newest.event.type.terminal and position(newest.id) <= position(after):
                raise StreamEndedError("the task ended; its last event was sent before")
        user_id, limit = self._uow.caller.user_id, self._limits.per_user
        # Taken now, so that one stream too many is a 429; held briefly until
        # the stream starts, so that a client gone before then holds nothing.
        slot = await self._slots.acquire(user_id, limit, SLOT_UNTIL_START_S)
        if slot is None:
            raise RateLimitedError(
                f"at most {limit} event streams may be open per user",
                retry_after_s=int(SLOT_LEASE_S),
                limit=limit,
            )
        return Feed(self._events(stream, after, task), self._slots, user_id, slot)

    async def _events(
        self, stream: StreamRef, after: str | None, task: Task | None
    ) -> AsyncGenerator[StoredEvent | None, None]:
        ended = task is not None and task.status in _ENDINGS
        repaired = False
        loop = asyncio.get_running_loop()
        checked = loop.time()
        async with self._bus.subscribe(stream, after) as subscription:
            while True:
                if loop.time() - checked >= self._limits.heartbeat_s:
                    # Still a member? Also on a quiet stream, within a heartbeat.
                    await cached_role(self._uow, self._cache)
                    checked = loop.time()
                wait_s = self._limits.ended_grace_s if ended else self._limits.heartbeat_s
                if events := await subscription.batch(wait_s):
                    # Still a member, checked after every one of these events was
                    # published: one removed before any of them gets none. (Cached,
                    # and invalidated right after every membership change commits.)
                    await cached_role(self._uow, self._cache)
                    checked = loop.time()
                    for event in events:
                        yield event
                        if stream.task_id is not None and event.event.type.terminal:
                            newest = await self._bus.newest(stream)
                            if newest is None or position(newest.id) <= position(event.id):
                                return
                            # A replay queued the task again after this ending
                            # (task.replayed follows): its stream goes on.
                elif task is not None and ended:
                    if repaired:
                        return  # its terminal event is there, before `after`
                    # The task ended but its stream lost the terminal event
                    # (Redis restarted empty): publish it again from the
                    # database's state. The bus drops it if the stream has one.
                    await self._bus.publish(_ending(task))
                    repaired = True
                else:
                    if task is not None:
                        # Quiet for a heartbeat: has the task ended while
                        # the bus lost its terminal event?
                        task = await _task(self._uow, task.workspace_id, task.id)
                        ended = task.status in _ENDINGS
                    yield None


class Feed:
    """An open event stream: events (None when a heartbeat is due) until it ends.

    It holds one of its user's stream slots: briefly until it is first read,
    then, renewed on a timer, until `close()`. A client that stops reading
    still counts against the cap while its stream is open. Whoever serves the
    feed calls `close()` however the response ends, read or not (a client
    gone before the stream started too); if even that never happens (the
    process died), the slot lapses on its own. A renewal still on its way
    when the slot is released never takes it back (OpenStreams.renew).
    """

    def __init__(
        self,
        events: AsyncGenerator[StoredEvent | None, None],
        slots: OpenStreams,
        user_id: UUID,
        slot: str,
    ) -> None:
        self._events, self._slots, self._user_id, self._slot = events, slots, user_id, slot
        self._renewing: asyncio.Task[None] | None = None
        self._closed = False

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> StoredEvent | None:
        if self._renewing is None:
            await self._slots.renew(self._user_id, self._slot, SLOT_LEASE_S)
            self._renewing = asyncio.ensure_future(self._renew())
        return await anext(self._events)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._renewing is not None:
            self._renewing.cancel()
        # Its own task, and first: a cancelled close (the client went away)
        # must not cancel the release too.
        release = asyncio.ensure_future(self._slots.release(self._user_id, self._slot))
        release.add_done_callback(lambda done: done.cancelled() or done.exception())
        await self._events.aclose()

    async def _renew(self) -> None:
        # close() cancels this task, but redis-py can turn a cancellation that
        # lands mid-command into a connection error (suppressed below): the
        # closed flag, not the cancellation alone, ends the loop.
        while not self._closed:
            await asyncio.sleep(SLOT_RENEW_S)
            with contextlib.suppress(UnavailableError):
                await self._slots.renew(self._user_id, self._slot, SLOT_LEASE_S)


def _ending(task: Task) -> TaskEvent:
    """The terminal event of a task, from its state in the database."""
    data: dict[str, object] = {}
    if task.status is TaskStatus.SUCCEEDED:
        data = {"result": task.result, "cached": task.cached}
    elif task.status is TaskStatus.FAILED:
        data = {"error": task.error}
    return TaskEvent(task.workspace_id, task.id, _ENDINGS[task.status], data)
