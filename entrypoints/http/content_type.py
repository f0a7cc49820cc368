"""Request bodies are JSON (API.md): a body declared as anything else is 415.

A guard on every route, so the answer is a problem document like every other
refusal. A request that sends no Content-Type is read as JSON; one that sends
no body (a cancel, a bodiless stream-ticket request) is never refused for its
header.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

_WITH_BODY = {"POST", "PUT", "PATCH"}
_JSON = re.compile(r"application/(?:[a-z0-9.+-]+\+)?json", re.IGNORECASE)
_UTF8 = {"utf-8", "utf8"}


def _declares_a_body(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    headers = connection.headers
    return "transfer-encoding" in headers or headers.get("content-length", "0") != "0"


async def json_bodies_only(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """Raise 415 for a body whose Content-Type is not JSON in UTF-8.

    A coroutine: Litestar runs a plain-function guard in a worker thread.
    """
    if connection.scope.get("method") not in _WITH_BODY or not _declares_a_body(connection):
        return
    declared = connection.headers.get("content-type")
    if declared is None:
        return
    parsed = Message()
    parsed["content-type"] = declared
    charset = parsed.get_content_charset("utf-8")
    if not _JSON.fullmatch(parsed.get_content_type()) or charset not in _UTF8:
        raise HTTPException(
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"request bodies are JSON in UTF-8 (Content-Type: application/json), "
            f"not {declared[:100]!r}",
        )
