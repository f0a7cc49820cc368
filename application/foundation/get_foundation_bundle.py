"""GetFoundationBundle: every foundation document of the workspace, cached as one value."""

from __future__ import annotations

from application.access import current_workspace
from application.caching import FOUNDATION_TTL_S, cached_role
from application.foundation._documents import unreadable
from domain.cache import bundle_key
from domain.entities import FoundationBundle, FoundationDocument, FoundationFilter
from domain.errors import UnreadableValueError
from domain.json_values import inspect
from domain.ports import Cache, UnitOfWork


class GetFoundationBundle:
    """Every foundation document of the workspace, cached as one value.

    Raises UnreadableValueError naming the documents Keel cannot carry.
    """

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(self) -> FoundationBundle:
        await cached_role(self._uow, self._cache)
        workspace_id = current_workspace(self._uow)

        loaded: list[FoundationDocument] = []

        async def load() -> FoundationBundle:
            async with self._uow as uow:
                documents = await uow.foundation.list(workspace_id, FoundationFilter(), None, None)
            loaded.extend(documents)
            return FoundationBundle(workspace_id, documents)

        try:
            bundle = await self._cache.get_or_set(
                bundle_key(workspace_id), load, type_=FoundationBundle, ttl_s=FOUNDATION_TTL_S
            )
        except UnreadableValueError as error:
            # Name the documents outside Keel's JSON: those are what to rewrite.
            culprits = [document for document in loaded if inspect(document.content).problems]
            if not culprits:
                raise
            raise UnreadableValueError(
                "; ".join(unreadable(document.id, error.detail) for document in culprits)
            ) from error
        assert bundle is not None, "the bundle loader never returns None"
        return bundle
