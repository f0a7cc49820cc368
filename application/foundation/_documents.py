"""What the foundation use cases share: the cached peek at a document, and
the errors for a document that cannot be read or a guarded write that
matched no row."""

from __future__ import annotations

from uuid import UUID

from domain.cache import Hit, document_key, member_key
from domain.entities import FoundationDocument, Role
from domain.errors import NotFoundError, PreconditionFailedError
from domain.ports import Cache, UnitOfWork


async def peek_document(
    cache: Cache, workspace_id: UUID, user_id: UUID, document_id: UUID
) -> tuple[Hit[Role] | None, Hit[FoundationDocument] | None]:
    """The caller's cached membership and the cached document, in one round trip."""
    member, document = await cache.peek(
        (member_key(workspace_id, user_id), Role),
        (document_key(workspace_id, document_id), FoundationDocument),
    )
    return member, document


def unreadable(document_id: UUID, reason: str) -> str:
    return (
        f"foundation document {document_id} holds a value Keel cannot carry ({reason});"
        " rewrite its content (PATCH) or delete it"
    )


async def explain_no_match(uow: UnitOfWork, workspace_id: UUID, document_id: UUID) -> None:
    """Raise the right error for a guarded write that matched no row."""
    if await uow.foundation.get(workspace_id, document_id) is None:
        raise NotFoundError("foundation document not found")
    raise PreconditionFailedError("the document changed since that version; read it again")
