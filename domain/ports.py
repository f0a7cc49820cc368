"""Ports: what the application needs from the outside world, as Protocols.

Adapters implement them (adapters/postgres, adapters/redis); tests use the
in-memory fakes in tests/fakes.py. Every repository works inside the tenant
context of the unit of work that owns it; the database enforces that context
again with row-level security.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar
from uuid import UUID

from domain.cache import CacheKey, Hit
from domain.entities import (
    Caller,
    FoundationChanges,
    FoundationDocument,
    FoundationFilter,
    Membership,
    Role,
    User,
    Workspace,
    WorkspaceAccess,
)

T = TypeVar("T")


class IdGenerator(Protocol):
    """Returns a new, time-ordered (UUIDv7) identifier on each call."""

    def __call__(self) -> UUID: ...


class UserRepository(Protocol):
    async def upsert(self, user: User) -> None:
        """Insert the caller's profile, or update its email if it changed."""
        ...

    async def get(self, user_id: UUID) -> User | None: ...


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
