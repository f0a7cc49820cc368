"""RenameWorkspace: a new name for the current workspace."""

from __future__ import annotations

from application.access import caller_role, current_workspace
from application.workspaces.names import clean_name
from domain.entities import Role, WorkspaceAccess
from domain.errors import NotFoundError
from domain.ports import UnitOfWork
from domain.rules import require_role


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
