"""In-memory fakes of the ports in domain/ports.py, for unit tests.

They mimic what the Postgres adapter lets callers observe: changes become
visible only once committed, constraint violations surface as the same
domain errors, and deleting a workspace cascades to its memberships.
Row-level security is not modelled: the use cases check access themselves,
and the integration tests cover the policies.

Units of work are meant to be used one after another, as in a request; a
commit replaces the whole committed state with the unit's working copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self
from uuid import UUID

from domain.entities import Caller, Membership, Role, User, Workspace, WorkspaceAccess
from domain.errors import ConflictError, LastOwnerError, NotFoundError
from domain.ports import MembershipRepository, UserRepository, WorkspaceRepository


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

    def copy(self) -> Tables:
        # Rows are frozen dataclasses, so copying the dicts is a full snapshot.
        return Tables(dict(self.users), dict(self.workspaces), dict(self.memberships))

    def replace_with(self, other: Tables) -> None:
        self.users, self.workspaces, self.memberships = (
            dict(other.users),
            dict(other.workspaces),
            dict(other.memberships),
        )


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


class InMemoryUnitOfWork:
    """One transaction over `committed`: a working copy per `async with`.

    `commit` publishes the working copy; leaving the block without it
    discards everything written since the last commit.
    """

    users: UserRepository
    workspaces: WorkspaceRepository
    memberships: MembershipRepository

    def __init__(self, caller: Caller, committed: Tables | None = None) -> None:
        self.caller = caller
        self.committed = committed if committed is not None else Tables()
        self.users = InMemoryUserRepository(self)
        self.workspaces = InMemoryWorkspaceRepository(self)
        self.memberships = InMemoryMembershipRepository(self)
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
