"""Ports: what the application needs from the outside world, as Protocols.

Adapters implement them (adapters/postgres, adapters/redis); tests use the
in-memory fakes in tests/fakes.py. Every repository works inside the tenant
context of the unit of work that owns it; the database enforces that context
again with row-level security.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from domain.entities import Caller, Membership, Role, User, Workspace, WorkspaceAccess


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


class UnitOfWork(Protocol):
    """One database transaction in one tenant context.

    It rolls back on exit unless `commit` was awaited; repositories are
    usable only inside `async with`.
    """

    caller: Caller
    users: UserRepository
    workspaces: WorkspaceRepository
    memberships: MembershipRepository

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
