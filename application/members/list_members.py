"""ListMembers: the workspace's members, a page at a time."""

from __future__ import annotations

from application.access import caller_role, current_workspace
from application.pagination import check_limit, decode_cursor, make_page
from domain.entities import Membership, Page
from domain.ports import UnitOfWork


class ListMembers:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, limit: int, cursor: str | None) -> Page[Membership]:
        limit, after = check_limit(limit), decode_cursor(cursor)
        async with self._uow as uow:
            await caller_role(uow)
            rows = await uow.memberships.list(current_workspace(uow), after, limit + 1)
        return make_page(rows, limit, lambda member: member.user_id)
