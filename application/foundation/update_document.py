"""UpdateDocument: a partial update of a foundation document, with optimistic concurrency."""

from __future__ import annotations

from uuid import UUID

from application.access import caller_role, current_workspace
from application.caching import forget
from application.foundation._documents import explain_no_match
from domain.cache import FOUNDATION
from domain.entities import FoundationChanges, FoundationDocument, Role
from domain.foundation import check_changes
from domain.ports import Cache, UnitOfWork
from domain.rules import require_role


class UpdateDocument:
    """Partial update with optimistic concurrency, in one transaction.

    Row-level security lets members and above update a document and no one
    else, so an updated row proves the role; only a write that matched no
    row asks for the caller's role, to tell a viewer (PermissionDeniedError)
    or a stranger (NotFoundError) from a stale version.

    Raises PreconditionFailedError when `expected_version` is given and no
    longer current, NotFoundError when the document does not exist.
    """

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(
        self, document_id: UUID, changes: FoundationChanges, expected_version: int | None
    ) -> FoundationDocument:
        changes = check_changes(changes)
        async with self._uow as uow:
            workspace_id = current_workspace(uow)
            updated = await uow.foundation.update(
                workspace_id, document_id, changes, expected_version, uow.caller.user_id
            )
            if updated is None:
                require_role(await caller_role(uow), Role.MEMBER, "writing foundation documents")
                await explain_no_match(uow, workspace_id, document_id)
            await uow.commit()
        await forget(self._cache, workspace_id, FOUNDATION)
        assert updated is not None
        return updated
