"""Use cases on foundation documents. Reads of one document and of the whole
bundle go through the cache; every write invalidates it after commit."""

from __future__ import annotations

from uuid import UUID

from application.access import caller_role, current_workspace
from application.caching import FOUNDATION_TTL_S, MISSING_TTL_S, cached_role, forget
from application.pagination import check_limit, decode_cursor, make_page
from domain.cache import FOUNDATION, Hit, bundle_key, document_key, member_key
from domain.entities import (
    FoundationBundle,
    FoundationChanges,
    FoundationDocument,
    FoundationFilter,
    Page,
    Role,
)
from domain.errors import NotFoundError, PreconditionFailedError, UnreadableValueError
from domain.foundation import check_changes, check_content, check_kind, check_tags, check_title
from domain.json_values import inspect
from domain.ports import Cache, IdGenerator, UnitOfWork
from domain.rules import require_role


class CreateDocument:
    def __init__(self, uow: UnitOfWork, cache: Cache, new_id: IdGenerator) -> None:
        self._uow, self._cache, self._new_id = uow, cache, new_id

    async def execute(
        self, kind: str, title: str, content: dict[str, object], tags: list[str]
    ) -> FoundationDocument:
        workspace_id, user_id = current_workspace(self._uow), self._uow.caller.user_id
        draft = FoundationDocument(
            workspace_id=workspace_id,
            id=self._new_id(),
            kind=check_kind(kind),
            title=check_title(title),
            content=check_content(content),
            tags=check_tags(tags),
            version=1,
            created_by=user_id,
            updated_by=user_id,
        )
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.MEMBER, "writing foundation documents")
            created = await uow.foundation.add(draft)
            await uow.commit()
        await forget(self._cache, workspace_id, FOUNDATION)
        return created


class ListDocuments:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self, where: FoundationFilter, limit: int, cursor: str | None
    ) -> Page[FoundationDocument]:
        limit, after = check_limit(limit), decode_cursor(cursor)
        async with self._uow as uow:
            await caller_role(uow)
            rows = await uow.foundation.list(current_workspace(uow), where, after, limit + 1)
        return make_page(rows, limit, lambda document: document.id)


async def _peek_document(
    cache: Cache, workspace_id: UUID, user_id: UUID, document_id: UUID
) -> tuple[Hit[Role] | None, Hit[FoundationDocument] | None]:
    """The caller's cached membership and the cached document, in one round trip."""
    member, document = await cache.peek(
        (member_key(workspace_id, user_id), Role),
        (document_key(workspace_id, document_id), FoundationDocument),
    )
    return member, document


class PeekDocument:
    """A document the cache alone can answer for: the caller is a cached member
    and the document a cached value. None means "ask GetDocument", which
    reads what the cache lacks and answers every other case."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def execute(
        self, workspace_id: UUID, user_id: UUID, document_id: UUID
    ) -> FoundationDocument | None:
        member, cached = await _peek_document(self._cache, workspace_id, user_id, document_id)
        if member is None or member.value is None or cached is None:
            return None
        return cached.value


class GetDocument:
    """One document, from the cache when it can: no Postgres round trip on a hit.

    Raises NotFoundError, or UnreadableValueError naming the document when it
    holds a value Keel cannot carry (stored before Keel's JSON was enforced).
    """

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(self, document_id: UUID) -> FoundationDocument:
        workspace_id, user_id = current_workspace(self._uow), self._uow.caller.user_id
        key = document_key(workspace_id, document_id)
        member, cached = await _peek_document(self._cache, workspace_id, user_id, document_id)
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
            raise UnreadableValueError(_unreadable(document_id, error.detail)) from error
        if document is None:
            raise NotFoundError("foundation document not found")
        return document


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
                "; ".join(_unreadable(document.id, error.detail) for document in culprits)
            ) from error
        assert bundle is not None, "the bundle loader never returns None"
        return bundle


def _unreadable(document_id: UUID, reason: str) -> str:
    return (
        f"foundation document {document_id} holds a value Keel cannot carry ({reason});"
        " rewrite its content (PATCH) or delete it"
    )


class UpdateDocument:
    """Partial update with optimistic concurrency.

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
            require_role(await caller_role(uow), Role.MEMBER, "writing foundation documents")
            workspace_id = current_workspace(uow)
            updated = await uow.foundation.update(
                workspace_id, document_id, changes, expected_version, uow.caller.user_id
            )
            if updated is None:
                await _explain_no_match(uow, workspace_id, document_id)
            await uow.commit()
        await forget(self._cache, workspace_id, FOUNDATION)
        assert updated is not None
        return updated


class DeleteDocument:
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
                await _explain_no_match(uow, workspace_id, document_id)
            await uow.commit()
        await forget(self._cache, workspace_id, FOUNDATION)


async def _explain_no_match(uow: UnitOfWork, workspace_id: UUID, document_id: UUID) -> None:
    """Raise the right error for a guarded write that matched no row."""
    if await uow.foundation.get(workspace_id, document_id) is None:
        raise NotFoundError("foundation document not found")
    raise PreconditionFailedError("the document changed since that version; read it again")
