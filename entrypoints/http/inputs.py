"""Keel's JSON and text rules where a request enters (domain/json_values.py).

Bodies are inspected as they are decoded (schemas.Body); this module covers
the rest of a request, for every route at once:

- `text_fields_only`, a guard: no query parameter holds a NUL or a lone
  surrogate or percent-encodes bytes that are not UTF-8 (the parser would
  make them U+FFFD and run the query), none is given twice (every parameter
  has one value; which of two counts is the reader's guess), and no header
  value holds a control character other than tab (RFC 9110 forbids them;
  servers in front of Keel may not). Each bad one is named in the 400.
- `KeelRequest`: a body nested deeper than the JSON decoder can follow is a
  400 that says so, not the decoder's RecursionError; a body that gives one
  key twice in an object is a 400 naming it (domain/json_keys.py).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any
from urllib.parse import unquote_to_bytes

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from domain.errors import InvalidFieldsError
from domain.json_keys import duplicate_keys
from domain.json_values import MAX_DEPTH, FieldProblem, text_problem

_HEADER_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
TOO_DEEP = f"arrays and objects nest at most {MAX_DEPTH} deep"


async def text_fields_only(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    # A coroutine: Litestar runs a plain-function guard in a worker thread.
    parameters = list(connection.query_params.multi_items())
    problems = [
        FieldProblem(name, f"the value {why}", "query")
        for name, value in parameters
        if (why := text_problem(value)) is not None
    ]
    problems += _not_utf8(connection.scope["query_string"])
    problems += [
        FieldProblem(name, "is given more than once", "query")
        for name, count in Counter(name for name, _ in parameters).items()
        if count > 1
    ]
    problems += [
        FieldProblem(name, "the value contains a control character", "header")
        for name, value in connection.headers.items()
        if _HEADER_CONTROLS.search(value)
    ]
    if problems:
        raise InvalidFieldsError(problems)


def _not_utf8(query: bytes) -> list[FieldProblem]:
    problems = []
    for part in query.split(b"&"):
        name, _, value = part.replace(b"+", b" ").partition(b"=")
        try:
            unquote_to_bytes(name).decode()
            unquote_to_bytes(value).decode()
        except UnicodeDecodeError:
            shown = unquote_to_bytes(name).decode(errors="replace")
            problems.append(FieldProblem(shown, "the parameter is not UTF-8", "query"))
    return problems


class KeelRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        if problems := duplicate_keys(await self.body()):
            raise InvalidFieldsError(problems)
        try:
            return await super().json()
        except RecursionError:
            raise InvalidFieldsError([FieldProblem("", TOO_DEEP)]) from None
