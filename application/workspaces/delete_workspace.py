"""DeleteWorkspace: the current workspace and everything in it go."""

from __future__ import annotations

from application.access import caller_role, current_workspace
from application.caching import forget
from domain.cache import FOUNDATION, MEMBERS
from domain.entities import Role
from domain.errors import NotFoundError
from domain.ports import Cache, UnitOfWork
from domain.rules import require_role


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
