"""Request ids and one structured access-log line per request.

A small ASGI middleware rather than Litestar's LoggingMiddleware: that one
logs request and response contents, while Keel needs an `X-Request-ID`
accepted from the client (or made), returned on the response and bound for
every log line of the request (slow queries included), and a line with the
route template, the user and the workspace, never bodies or query values.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_VALID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
access_log = structlog.get_logger("keel.access")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == HEADER and _VALID.fullmatch(value):
            return value.decode()
    return uuid.uuid4().hex


def request_context(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = _request_id(scope)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (HEADER, request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await app(scope, receive, send_with_id)
            finally:
                _log(scope, status, time.perf_counter() - started)

    return middleware


def bind_route(request: Request[Any, Any, Any]) -> None:
    """Litestar before_request hook: the route template for every later log line."""
    structlog.contextvars.bind_contextvars(route=request.scope.get("path_template"))


def _log(scope: Scope, status: int, seconds: float) -> None:
    user: Any = scope.get("user")
    workspace = scope.get("path_params", {}).get("workspace_id")
    access_log.info(
        "request",
        method=scope.get("method"),
        route=scope.get("path_template", "unmatched"),
        status=status,
        duration_ms=round(seconds * 1000, 2),
        user_id=str(user.user_id) if hasattr(user, "user_id") else None,
        workspace_id=str(workspace) if workspace else None,
    )
