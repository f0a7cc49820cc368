"""Bearer-JWT authentication (HS256, Supabase-compatible) on Litestar's JWTAuth.

Litestar verifies the signature, `exp`, `aud` and the required claims; an
`alg` other than the configured one, `none` included, is refused by PyJWT.
The first request of a user upserts their profile (RegisterCaller).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

import jwt
from litestar.connection import ASGIConnection
from litestar.security.jwt import JWTAuth, Token

from application.profiles import RegisterCaller

ALGORITHM = "HS256"
PUBLIC_PATHS = ["^/healthz$", "^/readyz$", "^/schema", "^/metrics$"]


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


def jwt_auth(secret: str, audience: str) -> JWTAuth[Principal, RememberedToken]:
    return JWTAuth[Principal, RememberedToken](
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
