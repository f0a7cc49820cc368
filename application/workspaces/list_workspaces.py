"""ListWorkspaces: the workspaces the caller belongs to, a page at a time."""

from __future__ import annotations

from application.pagination import check_limit, decode_cursor, make_page
from domain.entities import Page, WorkspaceAccess
from domain.ports import UnitOfWork


class ListWorkspaces:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, limit: int, cursor: str | None) -> Page[WorkspaceAccess]:
        limit, after = check_limit(limit), decode_cursor(cursor)
        async with self._uow as uow:
            rows = await uow.workspaces.list_for_user(uow.caller.user_id, after, limit + 1)
        return make_page(rows, limit, lambda access: access.workspace.id)
