"""Bearer-JWT authentication (HS256, Supabase-compatible) on Litestar's JWTAuth.

Litestar verifies the signature, `exp`, `aud` and the required claims; an
`alg` other than the configured one, `none` included, is refused by PyJWT.
The first request of a user upserts their profile (RegisterCaller).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
from litestar.connection import ASGIConnection
from litestar.security.jwt import JWTAuth, Token

from application.profiles import RegisterCaller

ALGORITHM = "HS256"
PUBLIC_PATHS = ["^/healthz$", "^/readyz$", "^/schema", "^/metrics$"]


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID
    email: str | None


async def _retrieve_principal(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> Principal | None:
    try:
        user_id = UUID(token.sub)
    except ValueError:
        return None
    email = token.extras.get("email")
    principal = Principal(user_id, email if isinstance(email, str) else None)
    register = await connection.state.dishka_container.get(RegisterCaller)
    await register.execute(principal.user_id, principal.email)
    return principal


def jwt_auth(secret: str, audience: str) -> JWTAuth[Principal, Token]:
    return JWTAuth[Principal, Token](
        token_secret=secret,
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
