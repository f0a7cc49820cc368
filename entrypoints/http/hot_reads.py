"""GET foundation/{id} answered from the cache before the framework runs.

Reading one foundation document is the hottest call (the UI reads them
constantly) and, with the cache warm, needs one Redis round trip. Through the
whole stack (routing, the authentication middleware, dishka's request
container, handler injection, the response machinery) a cached read ran at a
third of a bare handler doing one Redis GET. No library serves an ASGI fast
path in front of Litestar, so this small layer does, under one rule: it
answers only what the full path would answer, the same way, and hands every
other request to the full path untouched. It answers when

- the request is exactly `GET /v1/workspaces/{uuid}/foundation/{uuid}`
  (canonical lower-case ids; the path as Litestar routes it, root path cut
  off its way) with no query string, no conditional header, and, when CORS
  is on, no `Origin` (the full path adds the CORS headers);
- it carries one `Authorization: Bearer` token that passes the very check the
  authentication middleware makes (the same `credentials` and the same
  TokenVerifier, entrypoints/http/tokens.py), for a user whose profile is
  registered already;
- the cache holds both the caller's membership and the document (PeekDocument,
  the lookup GetDocument starts with).

The answer has the full path's body, ETag and request id, its access-log line
and its HTTP metrics series. Anything else, including any failure before the
answer starts, goes to the full path, which also answers every error.
tests/api/test_hot_reads.py compares the two paths answer by answer.
KEEL_HOT_READS=false leaves this layer out: every request takes the full path.
"""

from __future__ import annotations

import logging
import re
import time
from uuid import UUID

import msgspec
import structlog
from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send
from prometheus_client import Counter

from application.foundation import PeekDocument
from application.profiles import RegisterCaller
from domain.entities import FoundationDocument
from entrypoints.http.foundation import etag
from entrypoints.http.observability import (
    HEADER,
    RouteMetricsMiddleware,
    log_request,
    request_id_of,
)
from entrypoints.http.schemas import DocumentOut
from entrypoints.http.security_headers import NO_CONTENT, NOSNIFF
from entrypoints.http.tokens import TokenVerifier, credentials

logger = logging.getLogger("keel.http")
ROUTE = "/v1/workspaces/{workspace_id}/foundation/{document_id}"
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_PATH = re.compile(f"/v1/workspaces/({_UUID})/foundation/({_UUID})")
_CONDITIONAL = {b"if-none-match", b"if-match", b"if-modified-since", b"if-unmodified-since"}
_encode = msgspec.json.Encoder().encode
ANSWERED = Counter("keel_hot_reads_total", "GET foundation/{id} answered before the framework")


class HotDocumentReads:
    """The ASGI layer in front of the app; `ready()` arms it once the app has started."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        metrics: PrometheusConfig,
        *,
        cross_origin: bool = False,
    ) -> None:
        self.full_path = self._app = app
        self._cross_origin = cross_origin
        self._verifier = verifier
        self._metrics = RouteMetricsMiddleware(app, metrics)
        self._peek: PeekDocument | None = None
        self._register: RegisterCaller | None = None

    def ready(self, peek: PeekDocument, register: RegisterCaller) -> None:
        self._peek, self._register = peek, register

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
            or scope["method"] != "GET"
            or scope["query_string"]
            or (path := _PATH.fullmatch(_routed_path(scope))) is None
        ):
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            answer = await self._answer(scope, UUID(path[1]), UUID(path[2]))
        except Exception:
            logger.exception("the cached read failed; the full path answers instead")
            answer = None
        if answer is None:
            await self._app(scope, receive, send)
            return
        user_id, workspace_id, body, tag = answer
        request_id = request_id_of(scope)
        in_progress = self._metrics.in_progress("GET", ROUTE)
        in_progress.inc()
        try:
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"etag", tag),
                    (HEADER, request_id.encode()),
                    NOSNIFF,
                    NO_CONTENT,
                ],
            }
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
        finally:
            in_progress.dec()
            ANSWERED.inc()
            seconds = time.perf_counter() - started
            self._metrics.observe("GET", ROUTE, 200, seconds)
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                log_request("GET", ROUTE, 200, seconds, user_id, workspace_id)

    async def _answer(
        self, scope: Scope, workspace_id: UUID, document_id: UUID
    ) -> tuple[UUID, UUID, bytes, bytes] | None:
        """The caller, the workspace, the body and the ETag when the cache alone
        can answer; else None. Whatever can fail runs here, before the answer starts."""
        if self._peek is None or self._register is None:
            return None
        authorization = _authorization(scope, self._cross_origin)
        if authorization is None:
            return None
        try:
            identity = await self._verifier.verify(credentials(authorization))
        except Exception:  # the full path answers, and explains, every refusal
            return None
        user_id, email = identity.user_id, identity.email
        if not self._register.known(user_id, email):
            return None
        document = await self._peek.execute(workspace_id, user_id, document_id)
        if document is None:
            return None
        return user_id, document.workspace_id, _encode(DocumentOut.of(document)), _etag(document)


def _etag(document: FoundationDocument) -> bytes:
    return etag(document).encode()


def _routed_path(scope: Scope) -> str:
    """The path Litestar routes: without the root path, cut as its ASGI router cuts it."""
    path: str = scope["path"]
    if root_path := scope.get("root_path", ""):
        path = path.split(root_path, maxsplit=1)[-1]
    return path


def _authorization(scope: Scope, cross_origin: bool) -> list[str] | None:
    """The request's `Authorization` values, for `credentials` to judge; None
    for a request the full path must answer (no such header, a conditional
    request, a browser's cross-origin request when CORS is on: its headers
    are the full path's)."""
    found: list[str] = []
    for name, value in scope["headers"]:
        if name in _CONDITIONAL or (cross_origin and name == b"origin"):
            return None
        if name == b"authorization":
            found.append(value.decode("latin-1"))
    return found or None
