"""Task events: what happens to a task, as the browser sees it live (API.md).

Events are appended to a stream per task and per workspace; a position in a
stream (`StoredEvent.id`) is opaque to clients and only ever grows, so a
client that reconnects with its last id misses nothing and sees nothing twice.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from domain.errors import InvalidInputError


class EventType(enum.StrEnum):
    QUEUED = "task.queued"
    STARTED = "task.started"
    PROGRESS = "task.progress"
    TOKEN = "task.token"  # noqa: S105 - an event name, not a secret
    RETRYING = "task.retrying"
    SUCCEEDED = "task.succeeded"
    FAILED = "task.failed"
    CANCELLED = "task.cancelled"
    REPLAYED = "task.replayed"  # a dead letter queued again: its stream goes on
    RESET = "stream.reset"  # the requested position is older than what is retained

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def reopens(self) -> bool:
        """After it, the task's stream may end (once) again."""
        return self is EventType.REPLAYED


_TERMINAL = frozenset({EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED})


_POSITION = re.compile(r"([0-9]{1,20})-([0-9]{1,20})", re.ASCII)
_MAX_PART = 2**64 - 2  # Redis ids go to 2**64 - 1; nothing can come after that one
START = "0-0"  # the position before every event


def position(event_id: str) -> tuple[int, int]:
    """A position as a comparable pair; InvalidInputError unless `<ms>-<seq>`,
    each part below 2**64 - 1 (as the positions this server sends)."""
    match = _POSITION.fullmatch(event_id)
    parts = (int(match[1]), int(match[2])) if match else None
    if parts is None or max(parts) > _MAX_PART:
        raise InvalidInputError("Last-Event-ID must be an id this stream sent")
    return parts


def check_position(event_id: str | None) -> str | None:
    """A client's Last-Event-ID, checked."""
    if event_id is not None:
        position(event_id)
    return event_id


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TaskEvent:
    workspace_id: UUID
    task_id: UUID | None  # None only for stream.reset on a workspace stream
    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event at its position in one stream."""

    id: str
    event: TaskEvent


@dataclass(frozen=True, slots=True)
class StreamRef:
    """A task's stream, or (task_id None) the stream of its whole workspace."""

    workspace_id: UUID
    task_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class StreamGrant:
    """What a single-use stream ticket opens: a workspace's streams (or a task's), for a user."""

    user_id: UUID
    workspace_id: UUID
    task_id: UUID | None
    expires_at: datetime

    def allows(self, stream: StreamRef) -> bool:
        if stream.workspace_id != self.workspace_id:
            return False
        return self.task_id is None or self.task_id == stream.task_id
