"""Request ids, one structured access-log line per request, and the HTTP metrics.

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
from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.plugins.prometheus import (
    PrometheusConfig,
    PrometheusController,
    PrometheusMiddleware,
)
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram

HEADER = b"x-request-id"
_VALID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
access_log = structlog.get_logger("keel.access")


def request_id_of(scope: Scope) -> str:
    """The client's `X-Request-ID` when it is a sane one, else a new id."""
    for name, value in scope.get("headers", ()):
        if name == HEADER and _VALID.fullmatch(value):
            return value.decode()
    return uuid.uuid4().hex


def request_context(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = request_id_of(scope)
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


async def bind_route(request: Request[Any, Any, Any]) -> None:
    """Litestar before_request hook: the route template for every later log line.

    A coroutine: Litestar runs a plain function hook in a worker thread, a
    thread hop per request that cost a cached read a fifth of its time.
    """
    route = request.scope.get("path_template")
    structlog.contextvars.bind_contextvars(route=route)
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{request.method} {route}")
        span.set_attribute("http.route", str(route))


def _log(scope: Scope, status: int, seconds: float) -> None:
    user: Any = scope.get("user")
    workspace = scope.get("path_params", {}).get("workspace_id")
    log_request(
        scope.get("method", "-"),
        scope.get("path_template", "unmatched"),
        status,
        seconds,
        user.user_id if hasattr(user, "user_id") else None,
        workspace,
    )


def log_request(
    method: Any, route: str, status: int, seconds: float, user_id: Any, workspace_id: Any
) -> None:
    """The access-log line of one request."""
    access_log.info(
        "request",
        method=method,
        route=route,
        status=status,
        duration_ms=round(seconds * 1000, 2),
        user_id=str(user_id) if user_id else None,
        workspace_id=str(workspace_id) if workspace_id else None,
    )


class RouteMetricsMiddleware(PrometheusMiddleware):
    """Litestar's Prometheus middleware with the same metrics and labels, each
    route's labelled series looked up once rather than with four `labels()`
    calls per request (a tenth of a cached read's time went there).

    Takes no extra labels, exemplars or excluded methods: Keel sets none.
    """

    def __init__(self, app: ASGIApp, config: PrometheusConfig) -> None:
        if config.labels or config.exemplars or config.excluded_http_methods:
            raise ValueError(
                "RouteMetricsMiddleware takes no labels, exemplars or excluded methods"
            )
        super().__init__(app, config)
        self._in_progress: dict[tuple[str, str], Gauge] = {}
        self._done: dict[tuple[str, str, int], tuple[Counter, Histogram, Counter | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"] if scope["type"] == ScopeType.HTTP else scope["type"]
        path = scope["path_template"] if self._config.group_path else scope["path"]
        in_progress = self.in_progress(method, path)
        started, status, duration = time.perf_counter(), 200, 0.0

        async def timed_send(message: Message) -> None:
            nonlocal status, duration
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                duration = time.perf_counter() - started
            await send(message)

        in_progress.inc()
        try:
            await self.app(scope, receive, timed_send)
        except Exception as error:
            # A middleware's refusal (401, 429) is answered further out.
            status = error.status_code if isinstance(error, HTTPException) else 500
            duration = time.perf_counter() - started
            raise
        finally:
            in_progress.dec()
            self.observe(method, path, status, duration)

    def in_progress(self, method: str, path: str) -> Gauge:
        """The in-progress gauge of a route."""
        return self._in_progress.get((method, path)) or self._gauge((method, path))

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        """Count one finished request of a route."""
        key = (method, path, status)
        count, duration, errors = self._done.get(key) or self._series(key)
        count.inc()
        duration.observe(seconds)
        if errors is not None:
            errors.inc()

    def _labels(self, method: str, path: str, status: int) -> dict[str, str | int | float]:
        return {
            "method": method,
            "path": path,
            "status_code": status,
            "app_name": self._config.app_name,
        }

    def _gauge(self, route: tuple[str, str]) -> Gauge:
        labels = self._labels(*route, 200)
        gauge = self._in_progress[route] = self.requests_in_progress(labels).labels(
            *labels.values()
        )
        return gauge

    def _series(self, key: tuple[str, str, int]) -> tuple[Counter, Histogram, Counter | None]:
        labels = self._labels(*key)
        values = labels.values()
        series = self._done[key] = (
            self.request_count(labels).labels(*values),
            self.request_time(labels).labels(*values),
            self.requests_error_count(labels).labels(*values) if key[2] >= 500 else None,
        )
        return series


class MetricsController(PrometheusController):
    """Litestar's /metrics, documented as the Prometheus text it answers."""

    @get(
        operation_id="metrics",
        responses={
            200: ResponseSpec(
                str,
                media_type=CONTENT_TYPE_LATEST,
                description="Prometheus text exposition format",
                generate_examples=False,
            )
        },
    )
    async def get(self) -> Response[bytes]:
        metrics: Response[bytes] = await PrometheusController.get.fn(self)
        return metrics
