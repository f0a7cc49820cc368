"""Foundation documents over HTTP, with ETags and If-Match (API.md)."""

from __future__ import annotations

import re
from typing import Annotated, Any
from uuid import UUID

import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, Response, delete, get, patch, post
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from application.foundation import (
    CreateDocument,
    DeleteDocument,
    GetDocument,
    ListDocuments,
    UpdateDocument,
)
from application.pagination import DEFAULT_LIMIT
from domain.entities import FoundationChanges, FoundationDocument, FoundationFilter
from domain.errors import InvalidFieldsError, InvalidInputError, PreconditionFailedError
from domain.foundation import MAX_VERSION, check_filter_text
from domain.json_keys import duplicate_keys
from domain.json_values import FieldProblem, inspect
from entrypoints.http.controllers import Cursor, Limit
from entrypoints.http.inputs import TOO_DEEP
from entrypoints.http.openapi import ETAG, NOT_MODIFIED, problems
from entrypoints.http.schemas import DocumentIn, DocumentOut, DocumentPage, DocumentPatch

IfMatch = Annotated[
    str | None, HeaderParameter(name="If-Match", description='The ETag read before, e.g. "3"')
]
IfNoneMatch = Annotated[str | None, HeaderParameter(name="If-None-Match")]
# [0-9], not \d: Python's digits include ² and ٣, which int() or Postgres refuse.
_STRONG_ETAG = re.compile(r'"([0-9]{1,10})"')


def etag(document: FoundationDocument) -> str:
    return f'"{document.version}"'


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header asks for; None when absent or `*`.

    A weak ETag never matches (If-Match compares strongly): 412.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.strip()
    if value.startswith("W/"):
        raise PreconditionFailedError('If-Match needs a strong ETag such as "3"')
    found = _STRONG_ETAG.fullmatch(value)
    if found is None or int(found.group(1)) > MAX_VERSION:
        raise InvalidFieldsError(
            [FieldProblem("If-Match", 'must be one ETag such as "3", or *', "header")]
        )
    return int(found.group(1))


def _with_etag(document: FoundationDocument, status: int = 200) -> Response[DocumentOut]:
    return Response(DocumentOut.of(document), status_code=status, headers={"ETag": etag(document)})


def _contains(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        where = msgspec.json.decode(raw, type=dict[str, Any])
    except RecursionError:
        raise InvalidFieldsError([FieldProblem("contains", TOO_DEEP, "query")]) from None
    except msgspec.DecodeError:
        raise InvalidInputError('contains must be a JSON object, e.g. {"tone": "warm"}') from None
    problems = [
        FieldProblem("contains", f"{found.key or '/'}: {found.message}", "query")
        for found in inspect(where).problems or duplicate_keys(raw)
    ]
    if problems:
        raise InvalidFieldsError(problems)
    return where


class FoundationController(Controller):
    path = "/v1/workspaces/{workspace_id:uuid}/foundation"
    tags = ["foundation"]

    @post(responses=problems(404, 413, 415), response_headers=ETAG)
    async def create(
        self,
        workspace_id: FromPath[UUID],
        data: JSONBody[DocumentIn],
        use_case: FromDishka[CreateDocument],
    ) -> Response[DocumentOut]:
        document = await use_case.execute(data.kind, data.title, data.content, data.tags)
        return _with_etag(document, 201)

    @get(responses=problems(404))
    async def list_documents(
        self,
        workspace_id: FromPath[UUID],
        use_case: FromDishka[ListDocuments],
        kind: Annotated[str | None, QueryParameter()] = None,
        tag: Annotated[str | None, QueryParameter()] = None,
        contains: Annotated[
            str | None, QueryParameter(description="JSON object: JSONB containment on content")
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> DocumentPage:
        where = FoundationFilter(
            kind=kind if kind is None else check_filter_text(kind, "kind"),
            tag=tag if tag is None else check_filter_text(tag, "tag"),
            contains=_contains(contains),
        )
        page = await use_case.execute(where, limit, cursor)
        return DocumentPage([DocumentOut.of(item) for item in page.items], page.next_cursor)

    @get(
        "/{document_id:uuid}",
        responses={**problems(404), **NOT_MODIFIED},
        response_headers=ETAG,
    )
    async def read(
        self,
        workspace_id: FromPath[UUID],
        document_id: FromPath[UUID],
        use_case: FromDishka[GetDocument],
        if_none_match: IfNoneMatch = None,
    ) -> Response[DocumentOut | None]:
        document = await use_case.execute(document_id)
        if if_none_match is not None and if_none_match.strip() == etag(document):
            return Response(None, status_code=304, headers={"ETag": etag(document)})
        return _with_etag(document)  # type: ignore[return-value]

    @patch("/{document_id:uuid}", responses=problems(404, 412, 413, 415), response_headers=ETAG)
    async def update(
        self,
        workspace_id: FromPath[UUID],
        document_id: FromPath[UUID],
        data: JSONBody[DocumentPatch],
        use_case: FromDishka[UpdateDocument],
        if_match: IfMatch = None,
    ) -> Response[DocumentOut]:
        changes = FoundationChanges(
            kind=data.kind, title=data.title, content=data.content, tags=data.tags
        )
        document = await use_case.execute(document_id, changes, expected_version(if_match))
        return _with_etag(document)

    @delete("/{document_id:uuid}", responses=problems(404, 412))
    async def remove(
        self,
        workspace_id: FromPath[UUID],
        document_id: FromPath[UUID],
        use_case: FromDishka[DeleteDocument],
        if_match: IfMatch = None,
    ) -> None:
        await use_case.execute(document_id, expected_version(if_match))
