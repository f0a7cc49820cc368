"""DeleteDocument: remove a foundation document, optionally only at a given version."""

from __future__ import annotations

from uuid import UUID

from application.access import caller_role, current_workspace
from application.caching import forget
from application.foundation._documents import explain_no_match
from domain.cache import FOUNDATION
from domain.entities import Role
from domain.ports import Cache, UnitOfWork
from domain.rules import require_role


class DeleteDocument:
    """Raises PreconditionFailedError when `expected_version` is given and no
    longer current, NotFoundError when the document does not exist."""

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(self, document_id: UUID, expected_version: int | None) -> None:
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.MEMBER, "writing foundation documents")
            workspace_id = current_workspace(uow)
            deleted = await uow.foundation.delete(
                workspace_id, document_id, expected_version, uow.caller.user_id
            )
            if not deleted:
                await explain_no_match(uow, workspace_id, document_id)
            await uow.commit()
        await forget(self._cache, workspace_id, FOUNDATION)
