"""Use cases on workspaces: create, list, read, rename, delete."""

from __future__ import annotations

from dataclasses import dataclass

from application.access import caller_role, current_workspace
from application.caching import forget
from application.pagination import check_limit, decode_cursor, make_page
from domain.cache import FOUNDATION, MEMBERS
from domain.entities import Membership, Page, Role, Workspace, WorkspaceAccess
from domain.errors import InvalidInputError, LimitReachedError, NotFoundError
from domain.ports import Cache, IdGenerator, UnitOfWork
from domain.rules import require_role

MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class WorkspaceLimits:
    owned_per_user: int = 50


def clean_name(name: str) -> str:
    """A workspace name: 1 to 200 characters once surrounding spaces are trimmed."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidInputError(f"name must be 1 to {MAX_NAME_LENGTH} characters")
    return name


class CreateWorkspace:
    """Create a workspace with the caller as its owner, in one transaction.

    Raises LimitReachedError when the caller owns `limits.owned_per_user`
    workspaces already: every workspace is room in Redis (its cache, its
    event streams), so one account may not make them without end. The
    caller's profile is locked first, so concurrent creations by one user
    count in turn and cannot together pass the limit.
    """

    def __init__(
        self, uow: UnitOfWork, new_id: IdGenerator, limits: WorkspaceLimits = WorkspaceLimits()
    ) -> None:
        self._uow = uow
        self._new_id = new_id
        self._limits = limits

    async def execute(self, name: str) -> WorkspaceAccess:
        user_id = self._uow.caller.user_id
        workspace = Workspace(id=self._new_id(), name=clean_name(name), created_by=user_id)
        limit = self._limits.owned_per_user
        async with self._uow as uow:
            if not await uow.users.lock(user_id):
                raise NotFoundError("profile not found")
            if await uow.workspaces.count_owned(user_id) >= limit:
                raise LimitReachedError(
                    f"you own {limit} workspaces, as many as one user may;"
                    " delete one to create another"
                )
            await uow.workspaces.add(workspace)
            await uow.memberships.add(Membership(workspace.id, user_id, Role.OWNER))
            created = await uow.workspaces.get(workspace.id)
            await uow.commit()
        assert created is not None, "a workspace is visible to its owner"
        return WorkspaceAccess(created, Role.OWNER)


class ListWorkspaces:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, limit: int, cursor: str | None) -> Page[WorkspaceAccess]:
        limit, after = check_limit(limit), decode_cursor(cursor)
        async with self._uow as uow:
            rows = await uow.workspaces.list_for_user(uow.caller.user_id, after, limit + 1)
        return make_page(rows, limit, lambda access: access.workspace.id)


class GetWorkspace:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self) -> WorkspaceAccess:
        async with self._uow as uow:
            role = await caller_role(uow)
            workspace = await uow.workspaces.get(current_workspace(uow))
        if workspace is None:
            raise NotFoundError("workspace not found")
        return WorkspaceAccess(workspace, role)


class RenameWorkspace:
    """Admins and owners rename a workspace."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, name: str) -> WorkspaceAccess:
        name = clean_name(name)
        async with self._uow as uow:
            role = await caller_role(uow)
            require_role(role, Role.ADMIN, "renaming a workspace")
            workspace = await uow.workspaces.rename(current_workspace(uow), name)
            if workspace is None:
                raise NotFoundError("workspace not found")
            await uow.commit()
        return WorkspaceAccess(workspace, role)


class DeleteWorkspace:
    """Owners delete a workspace and everything in it."""

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(self) -> None:
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.OWNER, "deleting a workspace")
            workspace_id = current_workspace(uow)
            if not await uow.workspaces.delete(workspace_id):
                raise NotFoundError("workspace not found")
            await uow.commit()
        await forget(self._cache, workspace_id, MEMBERS, FOUNDATION)
