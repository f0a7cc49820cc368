"""The OpenAPI document at /schema, and its Swagger UI served without a CDN.

Litestar derives paths, parameters and bodies from the handlers. What it
cannot know, each handler declares with the helpers here: the problem
documents (RFC 9457) it answers with, the media type of a body that is not
JSON (event streams, Prometheus text), and response headers. The UI's
assets come from the `swagger-ui-py` package (Swagger UI 5, which reads
OpenAPI 3.1), served from /schema/assets: the page works offline and loads
nothing from another origin. It carries no Content-Security-Policy of its own
yet (Litestar renders the spec into an inline script; SECURITY.md's known
limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import msgspec
from litestar.datastructures import ResponseHeader
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler, Method

SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
BEARER = "BearerToken"
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]
BEARER_COMPONENTS = Components(
    security_schemes={
        BEARER: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="A Supabase Auth (or compatible) access token (docs/API.md)",
        )
    }
)


class Problem(msgspec.Struct, frozen=True):
    """An RFC 9457 problem document, as every error of the API is answered."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


_WHY = {
    400: "The request is malformed: a field, parameter or header has an invalid value",
    401: "No valid bearer token (or stream ticket); WWW-Authenticate says why",
    403: "The caller's role in the workspace does not allow this",
    404: "No such resource in a workspace the caller belongs to",
    409: "The request conflicts with the current state, or a per-user limit is reached",
    412: "If-Match names a version that is not the current one",
    413: "The request body is larger than the route accepts, or the caller's quota is used up",
    415: "The request body is not JSON in UTF-8",
    429: "Too many requests, open streams or tickets; Retry-After and RateLimit-* say when",
    503: "Postgres or Redis is unavailable, or Redis is full; Retry-After says when to retry",
}


# Any authenticated route may answer these: a bad header or parameter, no or a
# refused token, a role the token may not act as, Postgres or Redis down.
AUTHENTICATED = (400, 401, 403, 503)


def problems(*statuses: int, authenticated: bool = True) -> dict[int, ResponseSpec]:
    """The problem documents a route answers with: `statuses`, plus those of
    every authenticated route unless it is public."""
    every = AUTHENTICATED if authenticated else ()
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type="application/problem+json",
            description=_WHY[status],
            generate_examples=False,
        )
        for status in sorted({*every, *statuses})
    }


ETAG = [
    ResponseHeader(
        name="ETag",
        description='The document\'s version, e.g. "3": send it back in If-Match or If-None-Match',
        documentation_only=True,
        value='"1"',  # Litestar documents the header's type from its value
    )
]
NOT_MODIFIED = {
    304: ResponseSpec(
        data_container=None, description="If-None-Match names the current version: no body"
    )
}


def event_stream(description: str) -> dict[int, ResponseSpec]:
    """A `text/event-stream` success (Litestar would document it as JSON)."""
    return {
        200: ResponseSpec(
            data_container=str,
            media_type="text/event-stream",
            description=description,
            generate_examples=False,
        ),
        204: ResponseSpec(
            data_container=None,
            description="The stream has nothing more (the task ended): stop reconnecting",
        ),
        **problems(404, 429),
    }


@dataclass
class AnyJSONBody(Operation):
    """A route that reads its body raw (UI state keeps the exact bytes) but
    takes any JSON value: Litestar sees no body parameter to document."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=Schema(description="Any JSON"))},
            required=True,
        )


def operation_id(handler: HTTPRouteHandler, _method: Method, _path: list[Any]) -> str:
    """`tag_handler`, e.g. `foundation_update`: what a generated client names
    its functions (Litestar's default spells out the whole path)."""
    tags = handler.resolve_tags()
    return f"{tags[0]}_{handler.handler_name}".replace("-", "_") if tags else handler.handler_name


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Keel",
        version="1.0.0",
        path=SCHEMA_PATH,
        operation_id_creator=operation_id,
        components=BEARER_COMPONENTS,
        render_plugins=[
            SwaggerRenderPlugin(
                js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                css_url=f"{ASSETS_PATH}/swagger-ui.css",
                standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' href='{ASSETS_PATH}/favicon-32x32.png'>",
            )
        ],
    )


def swagger_assets() -> ControllerRouterHandler:
    # Located, not imported: the package's own code (Flask/aiohttp glue) is not needed.
    package = find_spec("swagger_ui")
    assert package is not None
    assert package.submodule_search_locations
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[Path(package.submodule_search_locations[0]) / "static"],
        include_in_schema=False,
        opt={"public": True},
    )
