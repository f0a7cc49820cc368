"""Bearer-JWT authentication (HS256, Supabase-compatible) on Litestar's JWTAuth.

Litestar verifies the signature, `exp`, `aud` and the required claims; an
`alg` other than the configured one, `none` included, is refused by PyJWT.
The first request of a user upserts their profile (RegisterCaller).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

import jwt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

from application.profiles import RegisterCaller
from domain.events import StreamGrant
from domain.ports import StreamTickets

ALGORITHM = "HS256"
PUBLIC_PATHS = ["^/healthz$", "^/readyz$", "^/schema", "^/metrics$", "^/console$"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RememberedToken(Token):
    """A Token whose successful verifications are remembered, bounded.

    A client sends the same token on every request until it expires; checking
    its HMAC and parsing its JSON each time was a fifth of a cached read's
    CPU. The whole encoded token (signature included) and the verification
    settings are the key, so a changed byte is verified afresh; expiry is
    checked on every use, and failures are never remembered.
    """

    MAX_REMEMBERED: ClassVar[int] = 10_000
    _verified: ClassVar[dict[tuple[Any, ...], RememberedToken]] = {}

    @classmethod
    def decode(
        cls, encoded_token: str, secret: str, algorithm: str, *args: Any, **kwargs: Any
    ) -> RememberedToken:
        key = (encoded_token, secret, algorithm, repr(args), repr(sorted(kwargs.items())))
        token = cls._verified.get(key)
        if token is not None and token.exp > _now():
            return token
        token = super().decode(encoded_token, secret, algorithm, *args, **kwargs)
        if len(cls._verified) >= cls.MAX_REMEMBERED:
            cls._verified.clear()
        cls._verified[key] = token
        return token


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID
    email: str | None
    grant: StreamGrant | None = None  # set when a stream ticket authenticated the request


async def _retrieve_principal(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> Principal | None:
    try:
        user_id = UUID(token.sub)
    except ValueError:
        return None
    email = token.extras.get("email")
    principal = Principal(user_id, email if isinstance(email, str) else None)
    register: RegisterCaller = connection.app.state.register_caller
    await register.execute(principal.user_id, principal.email)
    return principal


STREAM_PATHS = re.compile(r"/v1/workspaces/[^/]+/(?:tasks/[^/]+/)?events")


class TokenOrTicketMiddleware(JWTAuthenticationMiddleware):
    """A bearer token, or on event-stream paths only, a single-use `?ticket=`
    (EventSource cannot send headers). A request with a token never spends a ticket."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        ticket = connection.query_params.get("ticket")
        if (
            ticket is None
            or connection.headers.get(self.auth_header)
            or not STREAM_PATHS.fullmatch(connection.scope["path"])
        ):
            return await super().authenticate_request(connection)
        tickets = await connection.state.dishka_container.get(StreamTickets)
        grant = await tickets.redeem(ticket)
        if grant is None:
            raise NotAuthorizedException("the stream ticket is unknown, used or expired")
        return AuthenticationResult(user=Principal(grant.user_id, None, grant), auth=grant)


def jwt_auth(secret: str, audience: str) -> JWTAuth[Principal, RememberedToken]:
    return JWTAuth[Principal, RememberedToken](
        authentication_middleware_class=TokenOrTicketMiddleware,
        token_secret=secret,
        token_cls=RememberedToken,
        algorithm=ALGORITHM,
        accepted_audiences=[audience],
        require_claims=["sub", "exp", "aud"],
        retrieve_user_handler=_retrieve_principal,
        exclude=PUBLIC_PATHS,
    )


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
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
