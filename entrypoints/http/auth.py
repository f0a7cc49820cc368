"""Bearer-token authentication (Supabase-compatible) as a Litestar security config.

The rules are entrypoints/http/tokens.py's and claims.py's; this is the
middleware that applies them (or, on event-stream paths, redeems a stream
ticket), the OpenAPI security scheme, and a token issuer for development.
Litestar's JWTAuth is not used: it knows one secret and one algorithm,
requires `iat` and refuses one a second ahead, and its OpenAPI scheme
carries a `name` the `http` type does not have.
The first request of a user upserts their profile (RegisterCaller).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.middleware.base import DefineMiddleware
from litestar.openapi.spec import Components, SecurityRequirement
from litestar.security.base import AbstractSecurityConfig
from litestar.types import ASGIApp, Method

from application.profiles import RegisterCaller
from domain.events import StreamGrant
from domain.ports import StreamTickets
from entrypoints.http.claims import Identity
from entrypoints.http.openapi import BEARER, BEARER_COMPONENTS
from entrypoints.http.tokens import SYMMETRIC, TokenVerifier, credentials

PUBLIC_PATHS = ["^/healthz$", "^/readyz$", "^/schema", "^/metrics$", "^/console$"]
STREAM_PATHS = re.compile(r"/v1/workspaces/[^/]+/(?:tasks/[^/]+/)?events")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID
    email: str | None
    grant: StreamGrant | None = None  # set when a stream ticket authenticated the request


class TokenOrTicketMiddleware(AbstractAuthenticationMiddleware):
    """A bearer token, or on event-stream paths only, a single-use `?ticket=`
    (EventSource cannot send headers). A request with a token never spends a ticket."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        exclude: list[str],
        exclude_http_methods: list[Method],
    ) -> None:
        super().__init__(app, exclude=exclude, exclude_http_methods=exclude_http_methods)
        self.verifier = verifier

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        values = connection.headers.getall("authorization", [])
        given = connection.query_params.getall("ticket", [])
        if len(given) > 1:  # refused before either is spent (the 400 comes later)
            raise NotAuthorizedException(
                "give one stream ticket", headers={"WWW-Authenticate": "Bearer"}
            )
        ticket = given[0] if given else None
        if ticket is not None and not values and STREAM_PATHS.fullmatch(connection.scope["path"]):
            tickets = await connection.state.dishka_container.get(StreamTickets)
            grant = await tickets.redeem(ticket)
            if grant is None:
                raise NotAuthorizedException(
                    "the stream ticket is unknown, used or expired",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return AuthenticationResult(user=Principal(grant.user_id, None, grant), auth=grant)
        identity = await self.verifier.verify(credentials(values))
        register: RegisterCaller = connection.app.state.register_caller
        await register.execute(identity.user_id, identity.email)
        return AuthenticationResult(user=Principal(identity.user_id, identity.email), auth=identity)


class BearerAuth(AbstractSecurityConfig[Principal, Identity]):
    """Installs TokenOrTicketMiddleware and documents the bearer scheme."""

    authentication_middleware_class = TokenOrTicketMiddleware

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier
        self.exclude = list(PUBLIC_PATHS)
        self.exclude_http_methods: list[Method] = ["OPTIONS", "HEAD"]  # as Litestar's JWTAuth

    @property
    def middleware(self) -> DefineMiddleware:
        return DefineMiddleware(
            self.authentication_middleware_class,
            verifier=self.verifier,
            exclude=self.exclude,
            exclude_http_methods=self.exclude_http_methods,
        )

    @property
    def openapi_components(self) -> Components:
        return BEARER_COMPONENTS

    @property
    def security_requirement(self) -> SecurityRequirement:
        return {BEARER: []}


def issue_token(
    secret: str, audience: str, sub: UUID, email: str | None = None, ttl_seconds: int = 3600
) -> str:
    """A signed token shaped as Supabase Auth issues them, for development and tests."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(sub),
        "aud": audience,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
        "role": "authenticated",
    }
    if email:
        claims["email"] = email
    return jwt.encode(claims, secret, algorithm=SYMMETRIC)
