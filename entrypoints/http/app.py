"""The Litestar application factory.

`create_app(settings)` builds the app and its dishka container; tests pass
their own container to override providers. The container (entrypoints/api.py,
the composition root) is the API's only way to its adapters: this package
names ports and Litestar types, never a driver (pyproject's import contracts).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

import httpx
from dishka import AsyncContainer
from dishka.integrations.litestar import DishkaRouter, setup_dishka
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.config.cors import CORSConfig
from litestar.plugins.prometheus import PrometheusConfig

from application.foundation import PeekDocument
from application.profiles import RegisterCaller
from domain.ports import Cache, EventBus, StartupCheck
from entrypoints.api import make_container
from entrypoints.http.auth import BearerAuth
from entrypoints.http.console import console
from entrypoints.http.content_type import json_bodies_only
from entrypoints.http.controllers import MeController, MemberController, WorkspaceController
from entrypoints.http.dead_letters import DeadLetterController
from entrypoints.http.errors import EXCEPTION_HANDLERS
from entrypoints.http.events import EventController
from entrypoints.http.foundation import FoundationController
from entrypoints.http.health import healthz, readyz
from entrypoints.http.hot_reads import HotDocumentReads
from entrypoints.http.inputs import KeelRequest, text_fields_only
from entrypoints.http.jwks import KeySet
from entrypoints.http.observability import (
    MetricsController,
    RouteMetricsMiddleware,
    bind_route,
    request_context,
)
from entrypoints.http.openapi import SECURITY, openapi_config, swagger_assets
from entrypoints.http.security_headers import with_security_headers
from entrypoints.http.tasks import TaskController
from entrypoints.http.tokens import TokenVerifier
from entrypoints.http.ui_state import UIStateController
from entrypoints.http.webhooks import WebhookController
from entrypoints.settings import ConfigError, Settings
from entrypoints.tracing import traced

logger = logging.getLogger("keel.http")

METRICS = PrometheusConfig(
    app_name="keel",
    prefix="keel",
    group_path=True,
    exclude=["^/metrics$", "^/healthz$"],
    middleware_class=RouteMetricsMiddleware,
)


def _authenticate_inside(config: AppConfig, auth: BearerAuth) -> AppConfig:
    """Install authentication inside the metrics middleware (a security config
    puts itself first): a refused request is counted too.

    A security config also marks every route as needing its scheme: the API's
    own OpenAPI config replaces that, and the authenticated routes name it."""
    config = auth.on_app_init(config)
    config.middleware.append(config.middleware.pop(0))
    config.openapi_config = openapi_config()
    return config


def _jwks_source_ok(source: str) -> bool:
    if not source.startswith(("http://", "https://")):
        return Path(source).is_file()
    try:
        return bool(httpx.URL(source).host)
    except httpx.InvalidURL:
        return False


def token_problems(settings: Settings) -> list[str]:
    """What keeps tokens from being verified: KEEL_JWT_SECRET or KEEL_JWT_JWKS_URL
    must be set (both may be: HS256 tokens use the one, ES256/RS256 tokens the other)."""
    source = settings.jwt_jwks_url
    if settings.jwt_secret is None and source is None:
        return ["KEEL_JWT_SECRET or KEEL_JWT_JWKS_URL is required but neither is set"]
    if source is not None and not _jwks_source_ok(source):
        return ["KEEL_JWT_JWKS_URL is neither an http(s) URL nor a readable file"]
    return []


def token_verifier(settings: Settings) -> TokenVerifier:
    """Raises ConfigError naming token_problems(), if any."""
    if problems := token_problems(settings):
        raise ConfigError(problems)
    source = settings.jwt_jwks_url
    return TokenVerifier(
        audience=settings.jwt_audience,
        secret=settings.jwt_secret,
        keys=KeySet(source, settings.jwt_jwks_refresh_s) if source else None,
        issuer=settings.jwt_issuer,
        leeway_s=settings.jwt_leeway_s,
    )


def cors(origins: list[str]) -> CORSConfig | None:
    """Browsers on `origins` may call the API with a bearer token (no cookies)."""
    if not origins:
        return None
    return CORSConfig(
        allow_origins=origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "If-Match",
            "If-None-Match",
            "Idempotency-Key",
            "Last-Event-ID",
            "X-Request-ID",
        ],
        expose_headers=["ETag", "Retry-After", "X-Request-ID", "Location"],
        allow_credentials=False,
    )


def drain_event_streams(app: Litestar) -> None:
    """Close every open event stream with a retry hint (call it when shutdown starts:
    the server waits for open responses before the app's own shutdown runs).
    Safe to call from a signal handler."""
    drain = app.state.get("drain_event_streams")
    if drain is not None:
        drain()


def create_app(settings: Settings, container: AsyncContainer | None = None) -> Litestar:
    """Raises ConfigError when a required setting is missing."""
    try:
        settings.require("database_url", "redis_url")
    except ConfigError as missing:
        raise ConfigError(missing.problems + token_problems(settings)) from None
    verifier = token_verifier(settings)
    container = container or make_container(settings)

    async def check_role_on_startup() -> None:
        await (await container.get(StartupCheck)).check()

    def freeze_startup_objects() -> None:
        # Objects made at start-up live forever: keep them out of the
        # collector's generations, or full collections show in p99 latency.
        gc.collect()
        gc.freeze()

    async def arm_hot_reads(app: Litestar) -> None:
        # Process-wide, and wanted by every authenticated request: resolved once.
        register = app.state.register_caller = await container.get(RegisterCaller)
        hot_reads.ready(PeekDocument(await container.get(Cache)), register)

    async def read_token_keys() -> None:
        await verifier.warm()  # a failure is logged; requests try again

    async def keep_event_bus(app: Litestar) -> None:
        bus, loop = await container.get(EventBus), asyncio.get_running_loop()
        app.state.drain_event_streams = lambda: loop.call_soon_threadsafe(bus.drain)

    async def close_container() -> None:
        await container.close()

    auth = BearerAuth(verifier)
    cors_config = cors(settings.cors_origin_list)
    routes = DishkaRouter(
        "",
        route_handlers=[
            healthz,
            readyz,
            console,
            DishkaRouter(
                "",
                security=SECURITY,
                route_handlers=[
                    MeController,
                    WorkspaceController,
                    MemberController,
                    FoundationController,
                    EventController,
                    DeadLetterController,
                    UIStateController,
                    WebhookController,
                    TaskController,
                ],
            ),
            MetricsController,
            swagger_assets(),
        ],
    )
    app = Litestar(
        route_handlers=[routes],
        on_app_init=[lambda config: _authenticate_inside(config, auth)],
        on_startup=[
            check_role_on_startup,
            arm_hot_reads,
            read_token_keys,
            keep_event_bus,
            freeze_startup_objects,
        ],
        on_shutdown=[close_container],
        middleware=[METRICS.middleware],
        guards=[json_bodies_only, text_fields_only],
        request_class=KeelRequest,
        cors_config=cors_config,
        before_request=bind_route,
        exception_handlers=EXCEPTION_HANDLERS,
        # Logging is configured by the entry point (entrypoints/logging.py);
        # Litestar's default would replace the root handler with its own.
        logging_config=None,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
    )
    setup_dishka(container, app)
    # Outside Litestar's own layers, so that every answer, a refusal by a
    # middleware or an unknown route included, has a request id and a log line.
    hot_reads = HotDocumentReads(
        with_security_headers(request_context(app.asgi_handler)),
        verifier,
        METRICS,
        cross_origin=cors_config is not None,
    )
    served = hot_reads if settings.hot_reads else hot_reads.full_path
    app.asgi_handler = traced(served) if settings.tracing else served
    return app
