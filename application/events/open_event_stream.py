"""OpenEventStream: the feed of a workspace's, or one task's, events."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from uuid import UUID

from application.access import current_workspace
from application.caching import cached_role
from application.events._tasks import load_task
from application.events.feed import SLOT_LEASE_S, SLOT_UNTIL_START_S, Feed
from application.events.stream_limits import StreamLimits
from domain.entities import Task, TaskStatus
from domain.errors import NotFoundError, RateLimitedError, StreamEndedError
from domain.events import (
    EventType,
    StoredEvent,
    StreamGrant,
    StreamRef,
    TaskEvent,
    check_position,
    position,
)
from domain.ports import Cache, Clock, EventBus, OpenStreams, UnitOfWork

_ENDINGS = {
    TaskStatus.SUCCEEDED: EventType.SUCCEEDED,
    TaskStatus.FAILED: EventType.FAILED,
    TaskStatus.CANCELLED: EventType.CANCELLED,
}


class OpenEventStream:
    def __init__(
        self,
        uow: UnitOfWork,
        cache: Cache,
        bus: EventBus,
        slots: OpenStreams,
        limits: StreamLimits,
        clock: Clock,
    ) -> None:
        self._uow, self._cache, self._bus, self._slots = uow, cache, bus, slots
        self._limits, self._clock = limits, clock

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
        task = await load_task(self._uow, workspace_id, task_id) if task_id is not None else None
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
        clock = self._clock
        checked = clock.monotonic()
        async with self._bus.subscribe(stream, after) as subscription:
            while True:
                if clock.monotonic() - checked >= self._limits.heartbeat_s:
                    # Still a member? Also on a quiet stream, within a heartbeat.
                    await cached_role(self._uow, self._cache)
                    checked = clock.monotonic()
                wait_s = self._limits.ended_grace_s if ended else self._limits.heartbeat_s
                if events := await subscription.batch(wait_s):
                    # Still a member, checked after every one of these events was
                    # published: one removed before any of them gets none. (Cached,
                    # and invalidated right after every membership change commits.)
                    await cached_role(self._uow, self._cache)
                    checked = clock.monotonic()
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
                        task = await load_task(self._uow, task.workspace_id, task.id)
                        ended = task.status in _ENDINGS
                    yield None


def _ending(task: Task) -> TaskEvent:
    """The terminal event of a task, from its state in the database."""
    data: dict[str, object] = {}
    if task.status is TaskStatus.SUCCEEDED:
        data = {"result": task.result, "cached": task.cached}
    elif task.status is TaskStatus.FAILED:
        data = {"error": task.error}
    return TaskEvent(task.workspace_id, task.id, _ENDINGS[task.status], data)
