"""GetWorkspace: the current workspace and the caller's role in it."""

from __future__ import annotations

from application.access import caller_role, current_workspace
from domain.entities import WorkspaceAccess
from domain.errors import NotFoundError
from domain.ports import UnitOfWork


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
