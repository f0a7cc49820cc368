"""Entities and value objects: plain dataclasses, no persistence concerns."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID


class Role(enum.StrEnum):
    """A member's role in a workspace; later members of the enum rank lower."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


T = TypeVar("T")

_RANKS = {Role.OWNER: 3, Role.ADMIN: 2, Role.MEMBER: 1, Role.VIEWER: 0}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, and in which workspace: the tenant context of a transaction."""

    user_id: UUID
    workspace_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    email: str | None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Workspace:
    id: UUID
    name: str
    created_by: UUID
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    workspace_id: UUID
    user_id: UUID
    role: Role
    email: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WorkspaceAccess:
    """A workspace as one of its members sees it: with that member's role."""

    workspace: Workspace
    role: Role


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list; `next_cursor` is opaque to clients."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class FoundationDocument:
    """A piece of a workspace's foundation (brand, audience, product facts…)."""

    workspace_id: UUID
    id: UUID
    kind: str
    title: str
    content: dict[str, Any]
    tags: list[str]
    version: int
    created_by: UUID
    updated_by: UUID
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FoundationChanges:
    """A partial update: None leaves a field as it is."""

    kind: str | None = None
    title: str | None = None
    content: dict[str, Any] | None = None
    tags: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            name: value
            for name in ("kind", "title", "content", "tags")
            if (value := getattr(self, name)) is not None
        }


@dataclass(frozen=True, slots=True)
class FoundationFilter:
    kind: str | None = None
    tag: str | None = None
    contains: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class FoundationBundle:
    """Every foundation document of a workspace: the context AI tasks read."""

    workspace_id: UUID
    documents: list[FoundationDocument]


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TaskKind(enum.StrEnum):
    GENERATE = "generate"
    SUMMARIZE = "summarize"


@dataclass(frozen=True, slots=True)
class Task:
    workspace_id: UUID
    id: UUID
    kind: TaskKind
    status: TaskStatus
    input: dict[str, Any]
    created_by: UUID
    attempts: int = 0
    max_attempts: int = 5
    budget_from: int = 0  # attempts made when the current budget began (a replay)
    priority: int = 0
    progress: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    cached: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def may_retry(self, attempt: int) -> bool:
        """Whether attempt `attempt` leaves room for another: each budget (the
        first, or the one a replay grants) is `max_attempts` attempts."""
        return attempt - self.budget_from < self.max_attempts

    @property
    def dead_letter(self) -> bool:
        """Failed for good: a dead letter, which its workspace's owner (or an
        operator, through the queue) may replay."""
        return self.status is TaskStatus.FAILED


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One line of a task's attempt history: an attempt started, retried,
    failed, was lost, replayed..."""

    attempt: int
    outcome: str
    error: str | None
    delay_ms: int | None
    at: datetime


@dataclass(frozen=True, slots=True)
class TaskRef:
    """What a queue entry carries: enough to open the task's own tenant context."""

    workspace_id: UUID
    task_id: UUID
    created_by: UUID

    @property
    def caller(self) -> Caller:
        return Caller(self.created_by, self.workspace_id)


@dataclass(frozen=True, slots=True)
class Claim:
    """A task this worker now runs: attempt `attempt` of `max_attempts`.

    `unreadable` says why the task's stored input cannot be read (a row
    written around Keel's rules); such an attempt fails at once, for good.
    """

    task: Task
    attempt: int
    unreadable: str | None = None

    @property
    def replayed_from(self) -> int | None:
        """The attempt that failed for good before a replay, when this is the
        replay's first attempt (its dead letter may still be in the queue)."""
        budget = self.task.budget_from
        return budget if budget and self.attempt == budget + 1 else None


class ClaimRefused(enum.Enum):
    """Why claiming a task started no attempt."""

    BUSY = "busy"  # its workspace runs as many tasks as it may: try again later
    NOTHING = "nothing"  # nothing to run: cancelled, finished, or another worker's


class Lease(enum.Enum):
    """What a heartbeat found of the attempt's hold on its task."""

    HELD = "held"
    CANCEL_ASKED = "cancel asked"  # still held, and the task is to stop
    LOST = "lost"  # this attempt no longer owns the task


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A task to put on the queue: attempt `attempt`, after `delay_ms`.

    `trace_context` is the W3C traceparent of the request that created the
    task (opaque here), so the attempt continues that request's trace."""

    ref: TaskRef
    attempt: int
    priority: int
    delay_ms: int
    kind: TaskKind
    trace_context: str | None = None
