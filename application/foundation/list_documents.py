"""ListDocuments: the workspace's foundation documents, a page at a time."""

from __future__ import annotations

from application.access import caller_role, current_workspace
from application.pagination import check_limit, decode_cursor, make_page
from domain.entities import FoundationDocument, FoundationFilter, Page
from domain.ports import UnitOfWork


class ListDocuments:
    """A keyset page of the workspace's documents, in one transaction.

    Row-level security shows a workspace's documents to its members only, so
    a page with rows is the caller's to see; only an empty page asks whether
    the caller is a member (NotFoundError when not).
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self, where: FoundationFilter, limit: int, cursor: str | None
    ) -> Page[FoundationDocument]:
        limit, after = check_limit(limit), decode_cursor(cursor)
        async with self._uow as uow:
            rows = await uow.foundation.list(current_workspace(uow), where, after, limit + 1)
            if not rows:
                await caller_role(uow)
        return make_page(rows, limit, lambda document: document.id)
