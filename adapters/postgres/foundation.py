"""Foundation documents over Core: every change writes its revision in the
same transaction, and an update bumps the version in the same statement
that checks it (no read-modify-write race)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from uuid6 import uuid7

from adapters.postgres.repositories import Repository
from adapters.postgres.stored_json import readable
from adapters.postgres.tables import foundation_documents as documents
from adapters.postgres.tables import foundation_revisions as revisions
from domain.entities import FoundationChanges, FoundationDocument, FoundationFilter, Role


def _document(row: sa.Row[Any]) -> FoundationDocument:
    return FoundationDocument(
        workspace_id=row.workspace_id,
        id=row.id,
        kind=row.kind,
        title=row.title,
        content=readable(row.content, f"the content of foundation document {row.id}"),
        tags=list(row.tags),
        version=row.version,
        created_by=row.created_by,
        updated_by=row.updated_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# Built once: the hot uncached read skips building the statement and its
# cache key on every call (the parameters are bound per execution).
_WORKSPACE = sa.bindparam("workspace_id", type_=documents.c.workspace_id.type)
_CALLER = sa.select(sa.func.keel_private.caller_role(_WORKSPACE).label("caller_role")).subquery(
    "caller"
)
_WITH_ROLE = sa.select(_CALLER.c.caller_role, documents).select_from(
    _CALLER.outerjoin(
        documents,
        sa.and_(
            documents.c.workspace_id == _WORKSPACE,
            documents.c.id == sa.bindparam("document_id", type_=documents.c.id.type),
        ),
    )
)


def _ids(function: sa.Function[Any]) -> sa.Select[Any]:
    return sa.select(function.table_valued("id").render_derived().c.id)


class PgFoundationRepository(Repository):
    async def add(self, document: FoundationDocument) -> FoundationDocument:
        result = await self._execute(
            sa.insert(documents)
            .values(
                workspace_id=document.workspace_id,
                id=document.id,
                kind=document.kind,
                title=document.title,
                content=document.content,
                tags=document.tags,
                created_by=document.created_by,
                updated_by=document.updated_by,
            )
            .returning(documents)
        )
        created = _document(result.one())
        changes = {
            "kind": created.kind,
            "title": created.title,
            "content": created.content,
            "tags": created.tags,
        }
        await self._revision(
            created.workspace_id, created.id, 1, "created", created.created_by, changes
        )
        return created

    async def get(self, workspace_id: UUID, document_id: UUID) -> FoundationDocument | None:
        result = await self._execute(
            sa.select(documents).where(
                documents.c.workspace_id == workspace_id, documents.c.id == document_id
            )
        )
        row = result.first()
        return _document(row) if row else None

    async def get_with_role(
        self, workspace_id: UUID, document_id: UUID
    ) -> tuple[Role | None, FoundationDocument | None]:
        # One row always: the caller's role, left-joined to the document.
        parameters = {"workspace_id": workspace_id, "document_id": document_id}
        row = (await self._execute(_WITH_ROLE, parameters)).one()
        role = Role(row.caller_role) if row.caller_role else None
        return role, _document(row) if row.id is not None else None

    async def update(
        self,
        workspace_id: UUID,
        document_id: UUID,
        changes: FoundationChanges,
        expected_version: int | None,
        by: UUID,
    ) -> FoundationDocument | None:
        statement = (
            sa.update(documents)
            .where(*self._target(workspace_id, document_id, expected_version))
            .values(
                **changes.as_dict(),
                version=documents.c.version + 1,
                updated_by=by,
                updated_at=sa.func.now(),
            )
            .returning(documents)
        )
        row = (await self._execute(statement)).first()
        if row is None:
            return None
        updated = _document(row)
        await self._revision(
            workspace_id, document_id, updated.version, "updated", by, changes.as_dict()
        )
        return updated

    async def delete(
        self, workspace_id: UUID, document_id: UUID, expected_version: int | None, by: UUID
    ) -> bool:
        statement = (
            sa.delete(documents)
            .where(*self._target(workspace_id, document_id, expected_version))
            .returning(documents.c.version)
        )
        version = (await self._execute(statement)).scalar_one_or_none()
        if version is None:
            return False
        await self._revision(workspace_id, document_id, version + 1, "deleted", by, None)
        return True

    async def list(
        self, workspace_id: UUID, where: FoundationFilter, after: UUID | None, limit: int | None
    ) -> list[FoundationDocument]:
        query = (
            sa.select(documents)
            .where(documents.c.workspace_id == workspace_id)
            .order_by(documents.c.id)
            .limit(limit)
        )
        if where.kind is not None:
            query = query.where(documents.c.kind == where.kind)
        # Tag and containment matches come from SECURITY DEFINER functions that
        # can use the GIN indexes, which row-level security forbids here (@> is
        # not LEAKPROOF). They return ids of the caller's workspace only.
        if where.tag is not None:
            query = query.where(
                documents.c.id.in_(
                    _ids(sa.func.keel_private.foundation_ids_tagged(sa.cast(where.tag, sa.Text)))
                )
            )
        if where.contains is not None:
            query = query.where(
                documents.c.id.in_(
                    _ids(
                        sa.func.keel_private.foundation_ids_containing(
                            sa.cast(where.contains, JSONB)
                        )
                    )
                )
            )
        if after is not None:
            query = query.where(documents.c.id > after)
        return [_document(row) for row in await self._execute(query)]

    @staticmethod
    def _target(
        workspace_id: UUID, document_id: UUID, expected_version: int | None
    ) -> tuple[sa.ColumnElement[bool], ...]:
        target = (documents.c.workspace_id == workspace_id, documents.c.id == document_id)
        if expected_version is None:
            return target
        return (*target, documents.c.version == expected_version)

    async def _revision(
        self,
        workspace_id: UUID,
        document_id: UUID,
        version: int,
        action: str,
        by: UUID,
        changes: dict[str, Any] | None,
    ) -> None:
        await self._execute(
            sa.insert(revisions).values(
                workspace_id=workspace_id,
                id=uuid7(),
                document_id=document_id,
                version=version,
                action=action,
                changed_by=by,
                changes=changes,
            )
        )
