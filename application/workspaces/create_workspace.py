"""CreateWorkspace: a new workspace with the caller as its owner."""

from __future__ import annotations

from dataclasses import dataclass

from application.workspaces.names import clean_name
from domain.entities import Membership, Role, Workspace, WorkspaceAccess
from domain.errors import LimitReachedError, NotFoundError
from domain.ports import IdGenerator, UnitOfWork


@dataclass(frozen=True, slots=True)
class WorkspaceLimits:
    owned_per_user: int = 50


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
