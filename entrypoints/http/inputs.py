"""Keel's JSON and text rules where a request enters (domain/json_values.py).

Bodies are inspected as they are decoded (schemas.Body); this module covers
the rest of a request, for every route at once:

- `text_fields_only`, a guard: no query parameter holds a NUL or a lone
  surrogate, and no header value a control character other than tab
  (RFC 9110 forbids them; servers in front of Keel may not). Each bad one is
  named in the 400.
- `KeelRequest`: a body nested deeper than the JSON decoder can follow is a
  400 that says so, not the decoder's RecursionError.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from domain.errors import InvalidFieldsError
from domain.json_values import MAX_DEPTH, FieldProblem, text_problem

_HEADER_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
TOO_DEEP = f"arrays and objects nest at most {MAX_DEPTH} deep"


async def text_fields_only(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    # A coroutine: Litestar runs a plain-function guard in a worker thread.
    problems = [
        FieldProblem(name, f"the value {why}", "query")
        for name, value in connection.query_params.multi_items()
        if (why := text_problem(value)) is not None
    ]
    problems += [
        FieldProblem(name, "the value contains a control character", "header")
        for name, value in connection.headers.items()
        if _HEADER_CONTROLS.search(value)
    ]
    if problems:
        raise InvalidFieldsError(problems)


class KeelRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise InvalidFieldsError([FieldProblem("", TOO_DEEP)]) from None
