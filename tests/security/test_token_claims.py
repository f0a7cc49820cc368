"""One strict rule per claim and per header (entrypoints/http/claims.py,
tokens.py), tried both ways: every case of tests/security/token_cases.py
that keeps the rules is a user, every one that breaks one is a 401 (or a
403 for a valid token that is not a user's) with a problem document and a
`WWW-Authenticate: Bearer` challenge, and never reaches the database.

Found on main before these rules: `sub` in upper case, braces, `urn:uuid:`
or bare hex was the same user, the nil UUID a user, `Authorization: Token`
as good as `Bearer`, a 100 kB email stored, a NUL in it a 500, `anon`,
`service_role` and anonymous sign-ins full users, while a token without
`iat`, or with `iat` 2 s ahead, was refused.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from entrypoints.http.app import create_app
from entrypoints.settings import ConfigError, Settings
from tests.security.token_cases import GOOD, INVALID, NOT_A_USER, Case, with_claims

# Sent without credentials in the Bearer scheme: a bare challenge, no error code (RFC 6750 §3.1).
NO_BEARER = {
    "scheme Token",
    "scheme JWT",
    "scheme Basic",
    "no scheme",
    "scheme with a colon",
    "scheme and a tab",
}


async def _registered(owner_engine: AsyncEngine, user: uuid.UUID) -> bool:
    async with owner_engine.connect() as connection:
        found = await connection.execute(
            sa.text("select count(*) from users where id = :id"), {"id": user}
        )
        return bool(found.scalar_one())


@pytest.mark.parametrize("case", GOOD.values(), ids=GOOD.keys())
async def test_tokens_that_keep_every_rule_are_users(client: httpx.AsyncClient, case: Case) -> None:
    user = uuid.uuid4()
    response = await client.get("/v1/me", headers=case(user, f"{user.hex[:8]}@example.test"))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(user)


@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
async def test_tokens_that_break_a_rule_are_401_and_store_nothing(
    client: httpx.AsyncClient, owner_engine: AsyncEngine, case: Case, request: pytest.FixtureRequest
) -> None:
    user = uuid.uuid4()
    response = await client.get("/v1/me", headers=case(user, f"{user.hex[:8]}@example.test"))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401
    challenge = response.headers["www-authenticate"]
    if request.node.callspec.id in NO_BEARER:
        assert challenge == "Bearer"
    else:
        assert challenge.startswith('Bearer error="invalid_token"'), challenge
    assert not await _registered(owner_engine, user)


@pytest.mark.parametrize("case", NOT_A_USER.values(), ids=NOT_A_USER.keys())
async def test_valid_tokens_that_are_not_a_users_are_403(
    client: httpx.AsyncClient, owner_engine: AsyncEngine, case: Case
) -> None:
    user = uuid.uuid4()
    response = await client.get("/v1/workspaces", headers=case(user, "a@example.test"))
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'
    assert not await _registered(owner_engine, user)


LONGEST = "a" * 64 + "@" + "b" * 184 + ".test"  # 254 characters


@pytest.mark.parametrize(
    ("email", "stored"),
    [
        (LONGEST, LONGEST),
        ("Ünïcode.Ad+dress@bücher.example", "Ünïcode.Ad+dress@bücher.example"),
        ("", None),  # Supabase's phone sign-ins carry an empty email
        (None, None),
    ],
    ids=["254 characters", "unicode", "empty", "null"],
)
async def test_emails_that_keep_the_rule_are_stored(
    client: httpx.AsyncClient, email: str | None, stored: str | None
) -> None:
    user = uuid.uuid4()
    me = await client.get("/v1/me", headers=with_claims(email=email)(user, "unused@example.test"))
    assert me.status_code == 200, me.text
    assert me.json()["email"] == stored


async def test_two_authorization_headers_are_refused(client: httpx.AsyncClient) -> None:
    user = uuid.uuid4()
    good = with_claims()(user, "a@example.test")["Authorization"]
    twice = httpx.Headers([("Authorization", good), ("Authorization", good)])
    response = await client.get("/v1/me", headers=twice)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_no_credentials_is_a_bare_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/workspaces")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_the_openapi_bearer_scheme_is_a_valid_http_scheme(client: httpx.AsyncClient) -> None:
    schemes = (await client.get("/schema/openapi.json")).json()["components"]["securitySchemes"]
    scheme = schemes["BearerToken"]
    assert "name" not in scheme  # an http scheme has none (openapi-spec-validator refused it)
    assert (scheme["type"], scheme["scheme"].lower(), scheme["bearerFormat"]) == (
        "http",
        "bearer",
        "JWT",
    )


def test_an_app_without_a_secret_or_a_key_set_is_not_made(settings: Settings) -> None:
    bare = Settings(database_url=settings.database_url, redis_url=settings.redis_url)
    with pytest.raises(ConfigError, match="KEEL_JWT_SECRET or KEEL_JWT_JWKS_URL"):
        create_app(bare)
    for source in ("/nonexistent/jwks.json", "https://", "http://[::1"):
        with pytest.raises(ConfigError, match="KEEL_JWT_JWKS_URL is neither"):
            create_app(
                Settings(
                    database_url=settings.database_url,
                    redis_url=settings.redis_url,
                    jwt_jwks_url=source,
                )
            )
