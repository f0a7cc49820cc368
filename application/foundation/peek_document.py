"""PeekDocument: a foundation document the cache alone can answer for."""

from __future__ import annotations

from uuid import UUID

from application.foundation._documents import peek_document
from domain.entities import FoundationDocument
from domain.ports import Cache


class PeekDocument:
    """A document the cache alone can answer for: the caller is a cached member
    and the document a cached value. None means "ask GetDocument", which
    reads what the cache lacks and answers every other case."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def execute(
        self, workspace_id: UUID, user_id: UUID, document_id: UUID
    ) -> FoundationDocument | None:
        member, cached = await peek_document(self._cache, workspace_id, user_id, document_id)
        if member is None or member.value is None or cached is None:
            return None
        return cached.value
