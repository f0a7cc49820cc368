"""GetDocument: one foundation document, from the cache when it can."""

from __future__ import annotations

from uuid import UUID

from application.access import current_workspace
from application.caching import FOUNDATION_TTL_S, MISSING_TTL_S, cached_role
from application.foundation._documents import peek_document, unreadable
from domain.cache import document_key
from domain.entities import FoundationDocument
from domain.errors import NotFoundError, UnreadableValueError
from domain.ports import Cache, UnitOfWork


class GetDocument:
    """One document, from the cache when it can: no Postgres round trip on a hit;
    with the cache off, one transaction and one statement.

    Raises NotFoundError, or UnreadableValueError naming the document when it
    holds a value Keel cannot carry (stored before Keel's JSON was enforced).
    """

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(self, document_id: UUID) -> FoundationDocument:
        workspace_id, user_id = current_workspace(self._uow), self._uow.caller.user_id
        if not self._cache.keeps:
            return await self._uncached(workspace_id, document_id)
        key = document_key(workspace_id, document_id)
        member, cached = await peek_document(self._cache, workspace_id, user_id, document_id)
        if member is None or member.value is None:
            await cached_role(self._uow, self._cache)

        async def load() -> FoundationDocument | None:
            async with self._uow as uow:
                return await uow.foundation.get(workspace_id, document_id)

        try:
            document = (
                cached.value
                if cached is not None
                else await self._cache.get_or_set(
                    key,
                    load,
                    type_=FoundationDocument,
                    ttl_s=FOUNDATION_TTL_S,
                    negative_ttl_s=MISSING_TTL_S,
                )
            )
        except UnreadableValueError as error:
            raise UnreadableValueError(unreadable(document_id, error.detail)) from error
        if document is None:
            raise NotFoundError("foundation document not found")
        return document

    async def _uncached(self, workspace_id: UUID, document_id: UUID) -> FoundationDocument:
        """The caller's role and the document together, the role checked first."""
        try:
            async with self._uow as uow:
                role, document = await uow.foundation.get_with_role(workspace_id, document_id)
        except UnreadableValueError as error:
            raise UnreadableValueError(unreadable(document_id, error.detail)) from error
        if role is None:
            raise NotFoundError("workspace not found")
        if document is None:
            raise NotFoundError("foundation document not found")
        return document
