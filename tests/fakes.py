"""In-memory fakes of the ports in domain/ports/, for unit tests.

They mimic what the Postgres adapter lets callers observe: changes become
visible only once committed, constraint violations surface as the same
domain errors, and deleting a workspace cascades to its memberships.
Row-level security is modelled only where a use case relies on it: a
foundation list shows a workspace's documents to its members only, and only
members and above update a document. Elsewhere
the use cases check access themselves, and the integration tests cover the
policies.

Units of work are meant to be used one after another, as in a request; a
commit replaces the whole committed state with the unit's working copy. The
worker's side (InMemoryTaskStates, InMemoryTaskDispatcher) changes the
committed state at once, as each of its Postgres calls commits; its leases
and dispatch times are read on a FakeClock.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar, cast
from uuid import UUID, uuid4

from domain.cache import CacheKey, Hit
from domain.entities import (
    AttemptRecord,
    Caller,
    Claim,
    ClaimRefused,
    Dispatch,
    FoundationChanges,
    FoundationDocument,
    FoundationFilter,
    Lease,
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
from domain.errors import (
    ConflictError,
    InvalidInputError,
    LastOwnerError,
    NotFoundError,
    UnavailableError,
    WebhookDeliveryError,
)
from domain.events import StoredEvent, StreamGrant, StreamRef, TaskEvent, position
from domain.ports import (
    Clock,
    FoundationRepository,
    MembershipRepository,
    Subscription,
    TaskRepository,
    UserRepository,
    WebhookRepository,
    WorkspaceRepository,
)
from domain.ui_state import Refusal, UIState, UIStateQuota, charge
from domain.webhooks import Delivery, Webhook, WebhookSaved

T = TypeVar("T")


class IntegrityViolation(Exception):  # noqa: N818 - named after the database error it stands for
    """A constraint the adapter does not translate into a domain error."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Tables:
    """The rows of one database state; memberships are keyed by (workspace, user)."""

    users: dict[UUID, User] = field(default_factory=dict)
    workspaces: dict[UUID, Workspace] = field(default_factory=dict)
    memberships: dict[tuple[UUID, UUID], Membership] = field(default_factory=dict)
    documents: dict[tuple[UUID, UUID], FoundationDocument] = field(default_factory=dict)
    # A workspace's webhook and its signing secret.
    webhooks: dict[UUID, tuple[Webhook, str]] = field(default_factory=dict)
    tasks: dict[UUID, TaskRow] = field(default_factory=dict)
    # (workspace, idempotency key) -> (task id, request hash)
    task_keys: dict[tuple[UUID, str], tuple[UUID, str | None]] = field(default_factory=dict)
    # The outbox: per task, the attempt to put on the queue once committed.
    outbox: dict[UUID, Dispatch] = field(default_factory=dict)

    def add_member(self, workspace_id: UUID, role: Role) -> UUID:
        """A new user, a member of `workspace_id` with `role`."""
        user_id = uuid4()
        self.users[user_id] = User(user_id, None)
        self.memberships[workspace_id, user_id] = Membership(workspace_id, user_id, role)
        return user_id

    def copy(self) -> Tables:
        # Rows are frozen dataclasses, so copying the dicts is a full snapshot.
        return Tables(**{name: dict(getattr(self, name)) for name in _TABLES})

    def replace_with(self, other: Tables) -> None:
        for name in _TABLES:
            setattr(self, name, dict(getattr(other, name)))


_TABLES = [table.name for table in fields(Tables)]


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task and what only the database knows of it: the worker's bookkeeping."""

    task: Task
    history: tuple[AttemptRecord, ...] = ()
    cancel_requested: bool = False
    lease_until: float | None = None  # on the worker's clock, while running
    dispatched_at: float | None = None  # on the dispatcher's clock, until claimed

    def record(self, attempt: int, outcome: str, error: str | None = None) -> TaskRow:
        line = AttemptRecord(attempt, outcome, error, None, _now())
        return replace(self, history=(*self.history, line))


def _dispatch(task: Task) -> Dispatch:
    ref = TaskRef(task.workspace_id, task.id, task.created_by)
    return Dispatch(ref, task.attempts + 1, task.priority, 0, task.kind)


def _replayed(row: TaskRow) -> TaskRow:
    """Queued again with a fresh budget, as the adapter's replay leaves a failed task."""
    task = replace(
        row.task,
        status=TaskStatus.QUEUED,
        budget_from=row.task.attempts,
        result=None,
        error=None,
        progress=0,
        cached=False,
        finished_at=None,
    )
    replayed = replace(row, task=task, cancel_requested=False, lease_until=None)
    return replayed.record(task.attempts, "replayed")


class _Repository:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    @property
    def _tables(self) -> Tables:
        return self._uow.working


class InMemoryUserRepository(_Repository):
    async def upsert(self, user: User) -> None:
        existing = self._tables.users.get(user.id)
        if existing is None:
            self._tables.users[user.id] = replace(user, created_at=_now())
        elif existing.email != user.email:
            self._tables.users[user.id] = replace(existing, email=user.email)

    async def get(self, user_id: UUID) -> User | None:
        return self._tables.users.get(user_id)

    async def lock(self, user_id: UUID) -> bool:
        return user_id in self._tables.users


class InMemoryWorkspaceRepository(_Repository):
    async def add(self, workspace: Workspace) -> None:
        if workspace.id in self._tables.workspaces:
            raise IntegrityViolation("workspaces_pkey")
        if workspace.created_by not in self._tables.users:
            raise IntegrityViolation("workspaces_created_by_fkey")
        now = _now()
        self._tables.workspaces[workspace.id] = replace(workspace, created_at=now, updated_at=now)

    async def get(self, workspace_id: UUID) -> Workspace | None:
        return self._tables.workspaces.get(workspace_id)

    async def rename(self, workspace_id: UUID, name: str) -> Workspace | None:
        workspace = self._tables.workspaces.get(workspace_id)
        if workspace is None:
            return None
        renamed = replace(workspace, name=name, updated_at=_now())
        self._tables.workspaces[workspace_id] = renamed
        return renamed

    async def delete(self, workspace_id: UUID) -> bool:
        if self._tables.workspaces.pop(workspace_id, None) is None:
            return False
        for key in [key for key in self._tables.memberships if key[0] == workspace_id]:
            del self._tables.memberships[key]
        self._tables.webhooks.pop(workspace_id, None)
        return True

    async def list_for_user(
        self, user_id: UUID, after: UUID | None, limit: int | None
    ) -> list[WorkspaceAccess]:
        found = sorted(
            (m.workspace_id, m.role)
            for m in self._tables.memberships.values()
            if m.user_id == user_id and (after is None or m.workspace_id > after)
        )
        return [
            WorkspaceAccess(self._tables.workspaces[workspace_id], role)
            for workspace_id, role in found[:limit]
        ]

    async def count_owned(self, user_id: UUID) -> int:
        owned = (m for m in self._tables.memberships.values() if m.user_id == user_id)
        return sum(1 for m in owned if m.role is Role.OWNER)


class InMemoryMembershipRepository(_Repository):
    async def role_of(self, workspace_id: UUID, user_id: UUID) -> Role | None:
        membership = self._tables.memberships.get((workspace_id, user_id))
        return membership.role if membership else None

    async def get(self, workspace_id: UUID, user_id: UUID) -> Membership | None:
        membership = self._tables.memberships.get((workspace_id, user_id))
        return self._with_email(membership) if membership else None

    async def add(self, membership: Membership) -> None:
        key = (membership.workspace_id, membership.user_id)
        if key in self._tables.memberships:
            raise ConflictError("already a member of this workspace")
        if membership.user_id not in self._tables.users:
            raise NotFoundError("no such user: they must sign in once first")
        if membership.workspace_id not in self._tables.workspaces:
            raise IntegrityViolation("memberships_workspace_id_fkey")
        self._tables.memberships[key] = replace(membership, email=None, created_at=_now())

    async def set_role(self, workspace_id: UUID, user_id: UUID, role: Role) -> Membership | None:
        membership = self._tables.memberships.get((workspace_id, user_id))
        if membership is None:
            return None
        self._keep_an_owner(membership, role)
        self._tables.memberships[workspace_id, user_id] = replace(membership, role=role)
        return await self.get(workspace_id, user_id)

    async def remove(self, workspace_id: UUID, user_id: UUID) -> bool:
        membership = self._tables.memberships.get((workspace_id, user_id))
        if membership is None:
            return False
        self._keep_an_owner(membership, None)
        del self._tables.memberships[workspace_id, user_id]
        return True

    async def list(self, workspace_id: UUID, after: UUID | None, limit: int) -> list[Membership]:
        found = sorted(
            (
                m
                for m in self._tables.memberships.values()
                if m.workspace_id == workspace_id and (after is None or m.user_id > after)
            ),
            key=lambda m: m.user_id,
        )
        return [self._with_email(m) for m in found[:limit]]

    def _with_email(self, membership: Membership) -> Membership:
        return replace(membership, email=self._tables.users[membership.user_id].email)

    def _keep_an_owner(self, membership: Membership, new_role: Role | None) -> None:
        """The database's `workspace_keeps_an_owner` trigger."""
        if membership.role is not Role.OWNER or new_role is Role.OWNER:
            return
        other_owners = [
            m
            for m in self._tables.memberships.values()
            if m.workspace_id == membership.workspace_id
            and m.user_id != membership.user_id
            and m.role is Role.OWNER
        ]
        if not other_owners:
            raise LastOwnerError("a workspace keeps at least one owner")


class InMemoryFoundationRepository(_Repository):
    def _may_write(self, workspace_id: UUID) -> bool:
        """The documents' update policy: members and above."""
        membership = self._tables.memberships.get((workspace_id, self._uow.caller.user_id))
        return membership is not None and membership.role.at_least(Role.MEMBER)

    async def add(self, document: FoundationDocument) -> FoundationDocument:
        stored = replace(document, created_at=_now(), updated_at=_now())
        self._tables.documents[document.workspace_id, document.id] = stored
        return stored

    async def get(self, workspace_id: UUID, document_id: UUID) -> FoundationDocument | None:
        return self._tables.documents.get((workspace_id, document_id))

    async def get_with_role(
        self, workspace_id: UUID, document_id: UUID
    ) -> tuple[Role | None, FoundationDocument | None]:
        membership = self._tables.memberships.get((workspace_id, self._uow.caller.user_id))
        if membership is None:
            return None, None
        return membership.role, self._tables.documents.get((workspace_id, document_id))

    async def update(
        self,
        workspace_id: UUID,
        document_id: UUID,
        changes: FoundationChanges,
        expected_version: int | None,
        by: UUID,
    ) -> FoundationDocument | None:
        current = self._tables.documents.get((workspace_id, document_id))
        if current is None or expected_version not in (None, current.version):
            return None
        if not self._may_write(workspace_id):
            return None
        updated = replace(
            current,
            **changes.as_dict(),
            version=current.version + 1,
            updated_by=by,
            updated_at=_now(),
        )
        self._tables.documents[workspace_id, document_id] = updated
        return updated

    async def delete(
        self, workspace_id: UUID, document_id: UUID, expected_version: int | None, by: UUID
    ) -> bool:
        current = self._tables.documents.get((workspace_id, document_id))
        if current is None or expected_version not in (None, current.version):
            return False
        del self._tables.documents[workspace_id, document_id]
        return True

    async def list(
        self, workspace_id: UUID, where: FoundationFilter, after: UUID | None, limit: int | None
    ) -> list[FoundationDocument]:
        found = sorted(
            (
                document
                for (ws, _), document in self._tables.documents.items()
                if ws == workspace_id
                and (ws, self._uow.caller.user_id) in self._tables.memberships
                and where.kind in (None, document.kind)
                and (where.tag is None or where.tag in document.tags)
                and (where.contains is None or where.contains.items() <= document.content.items())
                and (after is None or document.id > after)
            ),
            key=lambda document: document.id,
        )
        return found if limit is None else found[:limit]


class InMemoryWebhookRepository(_Repository):
    async def get(self, workspace_id: UUID) -> Webhook | None:
        found = self._tables.webhooks.get(workspace_id)
        return found[0] if found else None

    async def save(self, webhook: Webhook, secret: str, rotate: bool) -> WebhookSaved:
        existing = self._tables.webhooks.get(webhook.workspace_id)
        if existing is None:
            stored = replace(webhook, created_at=_now(), updated_at=_now())
            self._tables.webhooks[webhook.workspace_id] = (stored, secret)
            return WebhookSaved(stored, created=True, secret=secret)
        kept, old_secret = existing
        stored = replace(kept, url=webhook.url, updated_at=_now())
        self._tables.webhooks[webhook.workspace_id] = (stored, secret if rotate else old_secret)
        return WebhookSaved(stored, created=False, secret=secret if rotate else None)

    async def delete(self, workspace_id: UUID) -> bool:
        return self._tables.webhooks.pop(workspace_id, None) is not None


class InMemoryTaskRepository(_Repository):
    """Tasks as users see them; adding one writes its dispatch to the outbox."""

    async def add(
        self, task: Task, idempotency_key: str | None, request_hash: str | None
    ) -> Task | None:
        tables = self._tables
        if idempotency_key is not None and (task.workspace_id, idempotency_key) in tables.task_keys:
            return None
        if task.id in tables.tasks:
            raise IntegrityViolation(f"duplicate task id {task.id}")
        stored = replace(task, created_at=_now())
        tables.tasks[task.id] = TaskRow(stored)
        if idempotency_key is not None:
            tables.task_keys[task.workspace_id, idempotency_key] = (task.id, request_hash)
        tables.outbox[task.id] = _dispatch(stored)
        return stored

    async def find_by_key(self, workspace_id: UUID, key: str) -> tuple[Task, str | None] | None:
        found = self._tables.task_keys.get((workspace_id, key))
        if found is None:
            return None
        task_id, request_hash = found
        return self._tables.tasks[task_id].task, request_hash

    async def get(self, workspace_id: UUID, task_id: UUID) -> Task | None:
        row = self._tables.tasks.get(task_id)
        return row.task if row is not None and row.task.workspace_id == workspace_id else None

    async def list(
        self,
        workspace_id: UUID,
        status: TaskStatus | None,
        kind: TaskKind | None,
        before: UUID | None,
        limit: int,
    ) -> list[Task]:
        rows = sorted(
            (
                row.task
                for row in self._tables.tasks.values()
                if row.task.workspace_id == workspace_id
                and status in (None, row.task.status)
                and kind in (None, row.task.kind)
                and (before is None or row.task.id < before)
            ),
            key=lambda task: task.id,
            reverse=True,
        )
        return rows[:limit]

    async def cancel(self, workspace_id: UUID, task_id: UUID) -> Task | None:
        if (task := await self.get(workspace_id, task_id)) is None:
            return None
        row = self._tables.tasks[task_id]
        if task.status is TaskStatus.QUEUED:
            task = replace(task, status=TaskStatus.CANCELLED, finished_at=_now())
            self._tables.outbox.pop(task_id, None)
        if task.status in (TaskStatus.CANCELLED, TaskStatus.RUNNING):
            self._tables.tasks[task_id] = replace(row, task=task, cancel_requested=True)
        return task

    async def replay(self, workspace_id: UUID, task_id: UUID) -> Task | None:
        task = await self.get(workspace_id, task_id)
        if task is None or task.status is not TaskStatus.FAILED:
            return None
        row = _replayed(self._tables.tasks[task_id])
        self._tables.tasks[task_id] = row
        self._tables.outbox[task_id] = _dispatch(row.task)
        return row.task

    async def history(self, workspace_id: UUID, task_id: UUID) -> builtins.list[AttemptRecord]:
        if await self.get(workspace_id, task_id) is None:
            return []
        return list(self._tables.tasks[task_id].history)


@dataclass
class StoredDelivery:
    """A delivery row: its claim state and outcome."""

    delivery: Delivery
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    available_in_ms: int = 0
    leased: bool = False


class InMemoryWebhookDeliveries:
    """The WebhookDeliveries port over a list; time is not modelled (a retry is
    due at once, its delay recorded), and `expire_leases` stands for a lease
    running out."""

    def __init__(self) -> None:
        self.rows: list[StoredDelivery] = []

    def add(self, delivery: Delivery) -> StoredDelivery:
        row = StoredDelivery(delivery)
        self.rows.append(row)
        return row

    def expire_leases(self) -> None:
        for row in self.rows:
            row.leased = False

    async def claim(self, batch: int, lease_s: float, max_attempts: int) -> list[Delivery]:
        claimed = []
        for row in self.rows:
            if row.status != "pending" or row.leased:
                continue
            if row.attempts >= max_attempts:
                row.status, row.last_error = "failed", "the worker stopped answering"
                continue
            if len(claimed) < batch:
                row.attempts += 1
                row.leased = True
                claimed.append(replace(row.delivery, attempt=row.attempts))
        return claimed

    def _owned(self, delivery: Delivery) -> StoredDelivery | None:
        for row in self.rows:
            if row.delivery.id == delivery.id and row.status == "pending":
                return row if row.attempts == delivery.attempt else None
        return None

    async def delivered(self, delivery: Delivery) -> bool:
        if (row := self._owned(delivery)) is None:
            return False
        row.status, row.leased = "delivered", False
        return True

    async def retry_later(self, delivery: Delivery, delay_ms: int, error: str) -> bool:
        if (row := self._owned(delivery)) is None:
            return False
        row.last_error, row.available_in_ms, row.leased = error, delay_ms, False
        return True

    async def give_up(self, delivery: Delivery, error: str) -> bool:
        if (row := self._owned(delivery)) is None:
            return False
        row.status, row.last_error, row.leased = "failed", error, False
        return True


class ScriptedSender:
    """A WebhookSender whose receiver answers from a script: each entry an error
    to raise (a failed attempt) or None (2xx); after the script, 2xx."""

    def __init__(self, *script: str | None) -> None:
        self.script = list(script)
        self.sent: list[Delivery] = []

    async def send(self, delivery: Delivery) -> None:
        self.sent.append(delivery)
        if self.script and (error := self.script.pop(0)) is not None:
            raise WebhookDeliveryError(error)


class StaticResolver:
    """An AddressResolver with a fixed table of answers."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(self, host: str, port: int) -> list[str]:
        if host not in self.answers:
            raise InvalidInputError(f"{host} does not resolve")
        return self.answers[host]


class InMemoryCache:
    """The Cache port in a dict, with the same generation semantics as RedisCache."""

    keeps = True

    def __init__(self) -> None:
        self.values: dict[CacheKey, tuple[int, object]] = {}
        self.generations: dict[tuple[UUID, str], int] = {}
        self.loads = 0

    async def get_or_set(
        self,
        key: CacheKey,
        loader: Callable[[], Awaitable[T | None]],
        *,
        type_: type[T],
        ttl_s: float,
        negative_ttl_s: float | None = None,
    ) -> T | None:
        generation = self.generations.get((key.workspace_id, key.namespace), 0)
        cached = self.values.get(key)
        if cached is not None and cached[0] == generation:
            return cast("T | None", cached[1])
        self.loads += 1
        value = await loader()
        if value is not None or negative_ttl_s is not None:
            self.values[key] = (generation, value)
        return value

    async def peek(self, *reads: tuple[CacheKey, type[Any]]) -> list[Hit[Any] | None]:
        found: list[Hit[Any] | None] = []
        for key, _ in reads:
            cached = self.values.get(key)
            current = self.generations.get((key.workspace_id, key.namespace), 0)
            found.append(Hit(cached[1]) if cached and cached[0] == current else None)
        return found

    async def invalidate(self, workspace_id: UUID, *namespaces: str) -> None:
        for namespace in namespaces:
            key = (workspace_id, namespace)
            self.generations[key] = self.generations.get(key, 0) + 1


class InMemoryUnitOfWork:
    """One transaction over `committed`: a working copy per `async with`.

    `commit` publishes the working copy; leaving the block without it
    discards everything written since the last commit.
    """

    users: UserRepository
    workspaces: WorkspaceRepository
    memberships: MembershipRepository
    foundation: FoundationRepository
    tasks: TaskRepository
    webhooks: WebhookRepository

    def __init__(self, caller: Caller, committed: Tables | None = None) -> None:
        self.caller = caller
        self.committed = committed if committed is not None else Tables()
        self.users = InMemoryUserRepository(self)
        self.workspaces = InMemoryWorkspaceRepository(self)
        self.memberships = InMemoryMembershipRepository(self)
        self.foundation = InMemoryFoundationRepository(self)
        self.tasks = InMemoryTaskRepository(self)
        self.webhooks = InMemoryWebhookRepository(self)
        self.commits = 0
        self._working: Tables | None = None

    @property
    def working(self) -> Tables:
        if self._working is None:
            raise RuntimeError("repositories are usable only inside `async with`")
        return self._working

    async def __aenter__(self) -> Self:
        if self._working is not None:
            raise RuntimeError("this unit of work is already open")
        self._working = self.committed.copy()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._working = None

    async def commit(self) -> None:
        self.committed.replace_with(self.working)
        self.commits += 1


class InMemoryUnitOfWorkFactory:
    """Opens units of work over one shared committed state, and records each caller."""

    def __init__(self, committed: Tables | None = None) -> None:
        self.committed = committed if committed is not None else Tables()
        self.opened: list[Caller] = []

    def __call__(self, caller: Caller) -> InMemoryUnitOfWork:
        self.opened.append(caller)
        return InMemoryUnitOfWork(caller, self.committed)


class FakeClock:
    """A Clock that stands still until a test advances it."""

    def __init__(self, start: datetime = datetime(2030, 1, 2, 3, 4, 5, 678_901, UTC)) -> None:
        self._now, self._monotonic = start, 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds


class InMemoryUIStateStore:
    """The UIStateStore port in a dict, with expiry on `clock` (tests move a FakeClock)."""

    def __init__(self, clock: Clock) -> None:
        self.entries: dict[tuple[UUID, UUID, str], UIState] = {}
        self.clock = clock
        self.down = False

    def _live(self, workspace_id: UUID, user_id: UUID) -> dict[str, UIState]:
        if self.down:
            raise UnavailableError("UI state is unavailable: Redis cannot be reached")
        now = self.clock.now()
        for name in [name for name, state in self.entries.items() if state.expires_at <= now]:
            del self.entries[name]
        return {
            key: state
            for (ws, user, key), state in self.entries.items()
            if (ws, user) == (workspace_id, user_id)
        }

    async def get(self, workspace_id: UUID, user_id: UUID, key: str) -> UIState | None:
        return self._live(workspace_id, user_id).get(key)

    async def put(self, state: UIState, quota: UIStateQuota) -> Refusal | None:
        live = self._live(state.workspace_id, state.user_id)
        name = (state.workspace_id, state.user_id, state.key)
        mine = {n: e for n, e in self.entries.items() if n[1] == state.user_id and n != name}
        if state.key not in live:
            if len(live) >= quota.keys_per_workspace:
                return Refusal.WORKSPACE_KEYS
            if len(mine) >= quota.entries_per_user:
                return Refusal.USER_ENTRIES
        if sum(map(charge, mine.values())) + charge(state) > quota.bytes_per_user:
            return Refusal.USER_BYTES
        self.entries[name] = state
        return None

    async def delete(self, workspace_id: UUID, user_id: UUID, key: str) -> bool:
        if key not in self._live(workspace_id, user_id):
            return False
        del self.entries[workspace_id, user_id, key]
        return True

    async def list(self, workspace_id: UUID, user_id: UUID) -> list[UIState]:
        live = self._live(workspace_id, user_id)
        return [replace(live[key], value=b"") for key in sorted(live)]


class RecordedEvents:
    """An EventPublisher that keeps what it was given."""

    def __init__(self) -> None:
        self.events: list[TaskEvent] = []

    async def publish(self, *events: TaskEvent) -> None:
        self.events.extend(events)


class InMemoryTaskStates:
    """The worker's state changes (TaskStates) on the committed tables, each
    guarded by status and attempt as the adapter's; leases run on `clock`."""

    def __init__(self, committed: Tables, clock: FakeClock) -> None:
        self.committed, self.clock = committed, clock
        self.postponed: list[tuple[TaskRef, int]] = []

    def _row(self, ref: TaskRef) -> TaskRow | None:
        row = self.committed.tasks.get(ref.task_id)
        return row if row is not None and row.task.workspace_id == ref.workspace_id else None

    def _owned(self, ref: TaskRef, attempt: int) -> TaskRow | None:
        row = self._row(ref)
        running = row is not None and row.task.status is TaskStatus.RUNNING
        return row if running and row is not None and row.task.attempts == attempt else None

    async def claim(self, ref: TaskRef, max_running: int, lease_s: float) -> Claim | ClaimRefused:
        row = self._row(ref)
        if row is None or row.task.status is not TaskStatus.QUEUED:
            return ClaimRefused.NOTHING
        running = sum(
            other.task.workspace_id == ref.workspace_id and other.task.status is TaskStatus.RUNNING
            for other in self.committed.tasks.values()
        )
        if running >= max_running:
            return ClaimRefused.BUSY
        attempt = row.task.attempts + 1
        task = replace(row.task, status=TaskStatus.RUNNING, attempts=attempt, started_at=_now())
        lease_until = self.clock.monotonic() + lease_s
        claimed = replace(row, task=task, lease_until=lease_until, dispatched_at=None)
        self.committed.tasks[ref.task_id] = claimed.record(attempt, "started")
        return Claim(task, attempt)

    async def heartbeat(self, ref: TaskRef, attempt: int, lease_s: float, progress: int) -> Lease:
        if (row := self._owned(ref, attempt)) is None:
            return Lease.LOST
        task = replace(row.task, progress=progress)
        lease_until = self.clock.monotonic() + lease_s
        self.committed.tasks[ref.task_id] = replace(row, task=task, lease_until=lease_until)
        return Lease.CANCEL_ASKED if row.cancel_requested else Lease.HELD

    async def finish(
        self,
        ref: TaskRef,
        attempt: int,
        status: TaskStatus,
        result: dict[str, object] | None = None,
        error: str | None = None,
        cached: bool = False,
    ) -> bool:
        if (row := self._owned(ref, attempt)) is None:
            return False
        task = replace(
            row.task, status=status, result=result, error=error, cached=cached, finished_at=_now()
        )
        finished = replace(row, task=task, lease_until=None)
        self.committed.tasks[ref.task_id] = finished.record(attempt, status.value, error)
        return True

    async def retry_later(self, ref: TaskRef, attempt: int, delay_ms: int, error: str) -> bool:
        if (row := self._owned(ref, attempt)) is None:
            return False
        task = replace(row.task, status=TaskStatus.QUEUED, error=error)
        self.committed.tasks[ref.task_id] = replace(row, task=task, lease_until=None).record(
            attempt, "retrying", error
        )
        self.committed.outbox[ref.task_id] = replace(_dispatch(task), delay_ms=delay_ms)
        return True

    async def postpone(self, ref: TaskRef, delay_ms: int) -> None:
        self.postponed.append((ref, delay_ms))

    async def replay(self, ref: TaskRef, attempt: int) -> Task | None:
        row = self._row(ref)
        if row is None or row.task.status is not TaskStatus.FAILED or row.task.attempts != attempt:
            return None
        replayed = _replayed(row)
        self.committed.tasks[ref.task_id] = replayed
        self.committed.outbox[ref.task_id] = _dispatch(replayed.task)
        return replayed.task


class InMemoryTaskDispatcher:
    """The outbox side (TaskDispatcher) on the committed tables, timed on `clock`."""

    def __init__(self, committed: Tables, clock: FakeClock) -> None:
        self.committed, self.clock = committed, clock
        self.woken = asyncio.Event()

    @asynccontextmanager
    async def batch(self, size: int) -> AsyncIterator[list[Dispatch]]:
        taken = list(itertools.islice(self.committed.outbox.values(), size))
        yield taken
        now = self.clock.monotonic()
        for dispatch in taken:
            del self.committed.outbox[dispatch.ref.task_id]
            row = self.committed.tasks[dispatch.ref.task_id]
            self.committed.tasks[dispatch.ref.task_id] = replace(row, dispatched_at=now)

    async def recover(self, redispatch_after_s: float) -> int:
        """Requeue running tasks whose lease lapsed (the attempt counted), and
        dispatch again queued ones dispatched `redispatch_after_s` ago but unclaimed."""
        now, recovered = self.clock.monotonic(), 0
        for task_id, row in list(self.committed.tasks.items()):
            task = row.task
            lost = task.status is TaskStatus.RUNNING and (row.lease_until or now) < now
            stale = (
                task.status is TaskStatus.QUEUED
                and row.dispatched_at is not None
                and now - row.dispatched_at >= redispatch_after_s
            )
            if lost:
                task = replace(task, status=TaskStatus.QUEUED)
                row = replace(row, task=task, lease_until=None).record(task.attempts, "lost")
            if lost or stale:
                self.committed.tasks[task_id] = replace(row, dispatched_at=None)
                self.committed.outbox[task_id] = _dispatch(task)
                recovered += 1
        return recovered

    async def wait_for_work(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.woken.wait(), timeout_s)
        self.woken.clear()


class InMemoryJobQueue:
    """The JobQueue port in a dict: one job per (task, attempt), as BullMQ's job ids."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[UUID, int], Dispatch] = {}
        self.failed: set[tuple[UUID, int]] = set()
        self.down = False

    async def enqueue(self, *dispatches: Dispatch) -> None:
        if self.down:
            raise UnavailableError("the queue is unavailable: Redis cannot be reached")
        for dispatch in dispatches:
            self.jobs.setdefault((dispatch.ref.task_id, dispatch.attempt), dispatch)

    async def counts(self) -> dict[str, int]:
        waiting = len(self.jobs.keys() - self.failed)
        return {
            "waiting": waiting,
            "prioritized": 0,
            "delayed": 0,
            "active": 0,
            "failed": len(self.failed),
        }

    async def forget_dead_letter(self, ref: TaskRef, attempt: int) -> None:
        self.failed.discard((ref.task_id, attempt))


class InMemoryEventBus:
    """The EventBus port in lists: one stream per task and per workspace.

    A second terminal event of a task is dropped (until a replay reopens its
    stream), as the Redis bus does; subscriptions wait on an asyncio.Condition.
    """

    def __init__(self) -> None:
        self.streams: dict[StreamRef, list[StoredEvent]] = {}
        self._ended: set[UUID] = set()
        self._sequence = itertools.count(1)
        self._changed = asyncio.Condition()
        self.down = self.drained = False

    async def publish(self, *events: TaskEvent) -> None:
        if self.down:
            raise UnavailableError("the event bus is unavailable: Redis cannot be reached")
        for event in events:
            if event.task_id is not None:
                if event.type.terminal and event.task_id in self._ended:
                    continue
                if event.type.terminal:
                    self._ended.add(event.task_id)
                elif event.type.reopens:
                    self._ended.discard(event.task_id)
            stored = StoredEvent(f"1-{next(self._sequence)}", event)
            for stream in {
                StreamRef(event.workspace_id),
                StreamRef(event.workspace_id, event.task_id),
            }:
                self.streams.setdefault(stream, []).append(stored)
        async with self._changed:
            self._changed.notify_all()

    @asynccontextmanager
    async def subscribe(self, stream: StreamRef, after: str | None) -> AsyncIterator[Subscription]:
        if self.drained:
            raise UnavailableError("the event bus is shutting down")
        if after is None:
            newest = await self.newest(stream) if stream.task_id is None else None
            after = newest.id if newest is not None else "0-0"
        yield _InMemorySubscription(self, stream, after)

    async def newest(self, stream: StreamRef) -> StoredEvent | None:
        events = self.streams.get(stream)
        return events[-1] if events else None

    def drain(self) -> None:
        self.drained = True

    async def _after(self, stream: StreamRef, after: str, timeout_s: float) -> list[StoredEvent]:
        def later() -> list[StoredEvent]:
            events = self.streams.get(stream, [])
            return [event for event in events if position(event.id) > position(after)]

        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(later), timeout_s)
        return later()


def _ids(event: TaskEvent) -> tuple[UUID, UUID | None]:
    return event.workspace_id, event.task_id


class _InMemorySubscription:
    def __init__(self, bus: InMemoryEventBus, stream: StreamRef, after: str) -> None:
        self._bus, self._stream, self._after = bus, stream, after

    async def next(self, timeout_s: float) -> StoredEvent | None:
        events = await self._bus._after(self._stream, self._after, timeout_s)
        if not events:
            return None
        self._after = events[0].id
        return events[0]

    async def batch(self, timeout_s: float) -> list[StoredEvent]:
        events = await self._bus._after(self._stream, self._after, timeout_s)
        if events:
            self._after = events[-1].id
        return events


class ScriptedModel:
    """A LanguageModel that streams the given tokens, then raises `error` if given."""

    def __init__(
        self, *tokens: str, error: Exception | None = None, name: str = "scripted"
    ) -> None:
        self.tokens, self.error, self.name = tokens, error, name
        self.prompts: list[tuple[str, str]] = []

    async def stream(self, system: str, prompt: str) -> AsyncIterator[str]:
        self.prompts.append((system, prompt))
        for token in self.tokens:
            yield token
        if self.error is not None:
            raise self.error


class InMemoryStreamTickets:
    """StreamTickets in a dict; a ticket lapses at its grant's expiry on `clock`."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.grants: dict[str, StreamGrant] = {}
        self._numbers = itertools.count(1)

    def _unexpired(self) -> dict[str, StreamGrant]:
        now = self.clock.now()
        self.grants = {ticket: g for ticket, g in self.grants.items() if g.expires_at > now}
        return self.grants

    async def issue(self, grant: StreamGrant, per_user: int) -> str | None:
        held = [g for g in self._unexpired().values() if g.user_id == grant.user_id]
        if len(held) >= per_user:
            return None
        ticket = f"ticket-{next(self._numbers)}"
        self.grants[ticket] = grant
        return ticket

    async def redeem(self, ticket: str) -> StreamGrant | None:
        return self._unexpired().pop(ticket, None)


class InMemoryOpenStreams:
    """OpenStreams as sets of slots per user (leases are not modelled)."""

    def __init__(self) -> None:
        self.slots: dict[UUID, set[str]] = {}
        self._numbers = itertools.count(1)

    async def acquire(self, user_id: UUID, limit: int, ttl_s: float) -> str | None:
        held = self.slots.setdefault(user_id, set())
        if len(held) >= limit:
            return None
        slot = f"slot-{next(self._numbers)}"
        held.add(slot)
        return slot

    async def renew(self, user_id: UUID, slot: str, ttl_s: float) -> None:
        return None

    async def release(self, user_id: UUID, slot: str) -> None:
        self.slots.get(user_id, set()).discard(slot)
