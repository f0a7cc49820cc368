"""Ports: what the application needs from the outside world, as Protocols.

Adapters implement them (adapters/postgres, adapters/redis); tests use the
in-memory fakes in tests/fakes.py. Every repository works inside the tenant
context of the unit of work that owns it; the database enforces that context
again with row-level security.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar
from uuid import UUID

from domain.cache import CacheKey, Hit
from domain.entities import (
    AttemptRecord,
    Caller,
    Claim,
    Dispatch,
    FoundationChanges,
    FoundationDocument,
    FoundationFilter,
    Membership,
    Role,
    Task,
    TaskKind,
    TaskRef,
    TaskStatus,
    User,
    Workspace,
    WorkspaceAccess,
)
from domain.events import StoredEvent, StreamGrant, StreamRef, TaskEvent
from domain.ui_state import Refusal, UIState, UIStateQuota
from domain.webhooks import Delivery, Webhook, WebhookSaved

T = TypeVar("T")


class IdGenerator(Protocol):
    """Returns a new, time-ordered (UUIDv7) identifier on each call."""

    def __call__(self) -> UUID: ...


class UserRepository(Protocol):
    async def upsert(self, user: User) -> None:
        """Insert the caller's profile, or update its email if it changed."""
        ...

    async def get(self, user_id: UUID) -> User | None: ...

    async def lock(self, user_id: UUID) -> bool:
        """Lock the user's profile until the transaction ends, so that the user's
        concurrent requests that count what they own take turns; False if the
        user has no profile."""
        ...


class WorkspaceRepository(Protocol):
    async def add(self, workspace: Workspace) -> None: ...

    async def get(self, workspace_id: UUID) -> Workspace | None: ...

    async def rename(self, workspace_id: UUID, name: str) -> Workspace | None: ...

    async def delete(self, workspace_id: UUID) -> bool:
        """Delete the workspace and everything in it; False if it was not there."""
        ...

    async def list_for_user(
        self, user_id: UUID, after: UUID | None, limit: int | None
    ) -> list[WorkspaceAccess]:
        """The user's workspaces ordered by id, after `after`; all when `limit` is None."""
        ...

    async def count_owned(self, user_id: UUID) -> int:
        """How many workspaces the user owns."""
        ...


class MembershipRepository(Protocol):
    async def role_of(self, workspace_id: UUID, user_id: UUID) -> Role | None: ...

    async def get(self, workspace_id: UUID, user_id: UUID) -> Membership | None: ...

    async def add(self, membership: Membership) -> None:
        """Raises ConflictError if already a member, NotFoundError for an unknown user."""
        ...

    async def set_role(self, workspace_id: UUID, user_id: UUID, role: Role) -> Membership | None:
        """Raises LastOwnerError if it would leave the workspace without an owner."""
        ...

    async def remove(self, workspace_id: UUID, user_id: UUID) -> bool:
        """Raises LastOwnerError if it would leave the workspace without an owner."""
        ...

    async def list(self, workspace_id: UUID, after: UUID | None, limit: int) -> list[Membership]:
        """Members ordered by user id, starting after `after`, with their emails."""
        ...


class FoundationRepository(Protocol):
    async def add(self, document: FoundationDocument) -> FoundationDocument:
        """Insert and return the stored document (with its timestamps), recording a revision."""
        ...

    async def get(self, workspace_id: UUID, document_id: UUID) -> FoundationDocument | None: ...

    async def update(
        self,
        workspace_id: UUID,
        document_id: UUID,
        changes: FoundationChanges,
        expected_version: int | None,
        by: UUID,
    ) -> FoundationDocument | None:
        """Apply `changes` and bump the version in one statement, recording a revision.

        None when no row matched: the document is absent, or its version is
        not `expected_version`.
        """
        ...

    async def delete(
        self, workspace_id: UUID, document_id: UUID, expected_version: int | None, by: UUID
    ) -> bool:
        """Delete (if at `expected_version`), recording a revision; False when no row matched."""
        ...

    async def list(
        self, workspace_id: UUID, where: FoundationFilter, after: UUID | None, limit: int | None
    ) -> list[FoundationDocument]:
        """Documents ordered by id, after `after`; all when `limit` is None."""
        ...


class TaskRepository(Protocol):
    """Tasks as users see and change them (the worker's state changes are
    TaskStates)."""

    async def add(
        self, task: Task, idempotency_key: str | None, request_hash: str | None
    ) -> Task | None:
        """Insert a queued task (its enqueue intent commits with it); None if the
        idempotency key is taken."""
        ...

    async def find_by_key(self, workspace_id: UUID, key: str) -> tuple[Task, str | None] | None:
        """The task created with this idempotency key, and its request hash."""
        ...

    async def get(self, workspace_id: UUID, task_id: UUID) -> Task | None: ...

    async def list(
        self,
        workspace_id: UUID,
        status: TaskStatus | None,
        kind: TaskKind | None,
        before: UUID | None,
        limit: int,
    ) -> list[Task]:
        """Newest first, starting before the id `before`."""
        ...

    async def cancel(self, workspace_id: UUID, task_id: UUID) -> Task | None:
        """Cancel a queued task at once; ask a running one to stop. None if absent."""
        ...

    async def replay(self, workspace_id: UUID, task_id: UUID) -> Task | None:
        """Queue a failed task again with a fresh budget of attempts (recording a
        `replayed` attempt row); None unless the task is there and failed."""
        ...

    async def history(self, workspace_id: UUID, task_id: UUID) -> builtins.list[AttemptRecord]:
        """The task's attempt history, oldest first."""
        ...


class TaskStates(Protocol):
    """A worker's state changes of one task. Each has committed when it returns
    (changes of several tasks made at the same moment may share a transaction),
    each runs in its task's tenant context (its workspace and creator, under
    row-level security), and each is guarded by (status, attempt), so a late or
    duplicate delivery can never write a second result."""

    async def claim(self, ref: TaskRef, max_running: int, lease_s: float) -> Claim | bool:
        """Start the next attempt: the Claim; True when the workspace already runs
        `max_running` tasks (try again later); False when there is nothing to run."""
        ...

    async def heartbeat(
        self, ref: TaskRef, attempt: int, lease_s: float, progress: int
    ) -> bool | None:
        """Extend the lease and record progress: whether cancel was asked, or None
        when this attempt no longer owns the task."""
        ...

    async def finish(
        self,
        ref: TaskRef,
        attempt: int,
        status: TaskStatus,
        result: dict[str, object] | None = None,
        error: str | None = None,
        cached: bool = False,
    ) -> bool:
        """Record the final state; False when this attempt no longer owns the task."""
        ...

    async def retry_later(self, ref: TaskRef, attempt: int, delay_ms: int, error: str) -> bool:
        """Back to queued, available after `delay_ms`; False when no longer ours."""
        ...

    async def postpone(self, ref: TaskRef, delay_ms: int) -> None:
        """Note that the task waits `delay_ms` more (the workspace is busy); the
        queue entry itself is delayed by the worker."""
        ...

    async def replay(self, ref: TaskRef, attempt: int) -> Task | None:
        """Queue the task again with a fresh budget of attempts, if it failed for
        good at attempt `attempt` (its last); the task as queued, else None."""
        ...


class WebhookRepository(Protocol):
    """A workspace's webhook; row-level security lets only its owners reach it."""

    async def get(self, workspace_id: UUID) -> Webhook | None: ...

    async def save(self, webhook: Webhook, secret: str, rotate: bool) -> WebhookSaved:
        """Create the webhook with `secret`, or change its URL (and, if `rotate`,
        its secret to `secret`) in one statement, safe against a concurrent save."""
        ...

    async def delete(self, workspace_id: UUID) -> bool:
        """Delete it and its undelivered events; False if there was none."""
        ...


class UnitOfWork(Protocol):
    """One database transaction in one tenant context.

    It rolls back on exit unless `commit` was awaited; repositories are
    usable only inside `async with`.
    """

    caller: Caller
    users: UserRepository
    workspaces: WorkspaceRepository
    memberships: MembershipRepository
    foundation: FoundationRepository
    tasks: TaskRepository
    webhooks: WebhookRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work bound to a caller (who, and in which workspace)."""

    def __call__(self, caller: Caller) -> UnitOfWork: ...


class Cache(Protocol):
    """Cache-aside over a shared store, per tenant.

    `get_or_set` never raises for the store's sake: if it is down or slow the
    loader's value is returned uncached. A value loaded before an
    `invalidate` of its namespace is never served after it.
    """

    async def get_or_set(
        self,
        key: CacheKey,
        loader: Callable[[], Awaitable[T | None]],
        *,
        type_: type[T],
        ttl_s: float,
        negative_ttl_s: float | None = None,
    ) -> T | None:
        """The cached value of `key`, or the loader's (then cached for about `ttl_s`).

        A None from the loader is cached for `negative_ttl_s` when given.
        Raises UnreadableValueError when the loader's value cannot be stored
        (it is not cached; the next call loads again).
        """
        ...

    async def peek(self, *reads: tuple[CacheKey, type[Any]]) -> list[Hit[Any] | None]:
        """Current cached values of several keys in one round trip; None for a miss.

        Loads nothing: on a miss, call `get_or_set` (in the order that access
        checks require).
        """
        ...

    async def invalidate(self, workspace_id: UUID, *namespaces: str) -> None:
        """Make every value cached so far in these namespaces of the workspace unreachable."""
        ...


class JobQueue(Protocol):
    """Where dispatched tasks wait for a worker. At-least-once: a task may be
    delivered twice, and the guarded state changes make that harmless."""

    async def enqueue(self, *dispatches: Dispatch) -> None:
        """Put each attempt in the queue, all at once. Idempotent per (task,
        attempt): a second enqueue of the same attempt is a no-op."""
        ...

    async def counts(self) -> dict[str, int]:
        """Jobs by state: waiting, prioritized, delayed, active, failed (the dead letters)."""
        ...

    async def forget_dead_letter(self, ref: TaskRef, attempt: int) -> None:
        """Remove the dead letter of that attempt, if the queue still holds it
        (its task was replayed)."""
        ...


class TaskDispatcher(Protocol):
    """The outbox side of the queue: tasks whose enqueue intent committed."""

    def batch(self, size: int) -> AbstractAsyncContextManager[list[Dispatch]]:
        """Up to `size` undispatched tasks, marked dispatched if the block exits
        cleanly; left for the next batch if it raises."""
        ...

    async def recover(self, redispatch_after_s: float) -> int:
        """Requeue tasks whose worker lost its lease, and dispatch again those
        dispatched long ago but never claimed. Returns how many."""
        ...

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return when a task may be waiting (a commit notified it), or after `timeout_s`."""
        ...


class WebhookDeliveries(Protocol):
    """The outbox of webhook deliveries, across workspaces (a worker's view).

    A delivery is recorded by the database when its task reaches a final
    state, in that same transaction. Each outcome is guarded by the attempt
    number: False when the attempt's lease ran out and another claim took it.
    """

    async def claim(self, batch: int, lease_s: float, max_attempts: int) -> list[Delivery]:
        """Up to `batch` due deliveries, each now on attempt `attempt` and leased
        for `lease_s` (a claim counts the attempt). A delivery whose last attempt's
        sender stopped answering is given up on here."""
        ...

    async def delivered(self, delivery: Delivery) -> bool: ...

    async def retry_later(self, delivery: Delivery, delay_ms: int, error: str) -> bool: ...

    async def give_up(self, delivery: Delivery, error: str) -> bool:
        """Record the last error; the delivery is not tried again."""
        ...


class WebhookSender(Protocol):
    """Sends one attempt of a delivery, signed (Standard Webhooks)."""

    async def send(self, delivery: Delivery) -> None:
        """Return once the receiver answered 2xx. Raises WebhookDeliveryError for
        any other answer, a timeout, a connection error, or a target that resolves
        to an address webhooks may not reach."""
        ...


class AddressResolver(Protocol):
    """DNS: the addresses a host name stands for."""

    async def resolve(self, host: str, port: int) -> list[str]:
        """IP literals for `host` (itself if it is one). Raises InvalidInputError
        when the name does not resolve."""
        ...


class LanguageModel(Protocol):
    """A chat model that streams its answer.

    Raises TransientModelError (worth retrying, maybe with `retry_after_s`) or
    ModelError (not).
    """

    name: str

    def stream(self, system: str, prompt: str) -> AsyncIterator[str]: ...


class EventPublisher(Protocol):
    """Appends task events to their task's and workspace's streams and wakes listeners."""

    async def publish(self, *events: TaskEvent) -> None:
        """Append `events` in order. A second terminal event of a task is dropped,
        so a task's stream ends exactly once. Raises UnavailableError when the
        bus cannot be reached."""
        ...


class Subscription(Protocol):
    async def next(self, timeout_s: float) -> StoredEvent | None:
        """The next event after the last one returned, or None when none came within
        `timeout_s`. Raises SubscriptionClosedError when this subscriber fell too far
        behind or the process is shutting down: resume from the last id returned."""
        ...

    async def batch(self, timeout_s: float) -> list[StoredEvent]:
        """As `next`, with every later event already received (none read from the
        store for it), in order; an empty list when none came within `timeout_s`."""
        ...


class EventBus(EventPublisher, Protocol):
    def subscribe(
        self, stream: StreamRef, after: str | None
    ) -> AbstractAsyncContextManager[Subscription]:
        """Events of `stream` after the position `after` (None: a task stream from its
        start, a workspace stream from now on), then live ones, each exactly once. If
        `after` is older than what is retained, the first event is a stream.reset."""
        ...

    async def newest(self, stream: StreamRef) -> StoredEvent | None:
        """The last event still in `stream`, if any."""
        ...

    def drain(self) -> None:
        """Close every open subscription and refuse new ones: the process is stopping."""
        ...


class StreamTickets(Protocol):
    """Single-use, short-lived credentials for browsers' EventSource."""

    async def issue(self, grant: StreamGrant, per_user: int) -> str | None:
        """A ticket for `grant`, valid once until `grant.expires_at`; None when
        the grant's user already holds `per_user` unused, unexpired tickets
        (checked and taken in one atomic step)."""
        ...

    async def redeem(self, ticket: str) -> StreamGrant | None:
        """The grant of an unused, unexpired ticket (which is used up now); None otherwise."""
        ...


class OpenStreams(Protocol):
    """How many event streams each user holds open, across every API process."""

    async def acquire(self, user_id: UUID, limit: int, ttl_s: float) -> str | None:
        """A slot for one more stream, held for `ttl_s` unless renewed; None at `limit`."""
        ...

    async def renew(self, user_id: UUID, slot: str, ttl_s: float) -> None:
        """Hold `slot` for `ttl_s` more (taking it again if it had lapsed), unless it
        was released: a renewal that arrives after the release never takes it back."""
        ...

    async def release(self, user_id: UUID, slot: str) -> None: ...


class UIStateStore(Protocol):
    """Per-user transient UI state of each workspace, every entry with its own lifetime."""

    async def get(self, workspace_id: UUID, user_id: UUID, key: str) -> UIState | None: ...

    async def put(self, state: UIState, quota: UIStateQuota) -> Refusal | None:
        """Store (or replace) the entry, or say which of `quota`'s bounds it would
        pass: the user's live keys in that workspace, or the user's entries or
        charged bytes (`domain.ui_state.charge`) across every workspace. The
        check and the write are one atomic step: concurrent writers cannot
        pass a bound together."""
        ...

    async def delete(self, workspace_id: UUID, user_id: UUID, key: str) -> bool:
        """False when there was no live entry."""
        ...

    async def list(self, workspace_id: UUID, user_id: UUID) -> list[UIState]:
        """The user's live entries in the workspace, ordered by key, values left empty."""
        ...
