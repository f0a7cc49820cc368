"""The cached-read fast path (entrypoints/http/hot_reads.py) decodes tokens
too: it must apply exactly the rules of the full path. Every token of
tests/security/token_cases.py, and the JWKS ones, goes to an app with the
fast path and to one without it, for a warm document the token's user may
read; status and body must agree, and only good tokens may be answered fast.

Before the shared TokenVerifier the two paths each had their own copy of the
header parsing and token decoding; nothing compared them on claims.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from litestar.testing import AsyncTestClient

from entrypoints.http.app import create_app
from entrypoints.http.hot_reads import HotDocumentReads
from entrypoints.settings import Settings
from tests.api.test_hot_reads import _both, _document
from tests.conftest import AUDIENCE, People
from tests.security.jwks_issuer import ISSUER, Issuer, SigningKey, claims, serving_jwks
from tests.security.token_cases import GOOD, INVALID, NOT_A_USER

ES256, RS256 = SigningKey.new("ES256"), SigningKey.new("RS256")


def _apps(settings: Settings) -> tuple[AsyncTestClient, AsyncTestClient]:
    """An app with the fast path, and one without it."""
    without = create_app(settings)
    assert isinstance(without.asgi_handler, HotDocumentReads)
    without.asgi_handler = without.asgi_handler.full_path
    return AsyncTestClient(create_app(settings)), AsyncTestClient(without)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serving_jwks() as published:
        yield published


@pytest.fixture
async def full(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    _, without = _apps(settings)
    async with without as client:
        yield client


async def test_every_token_case_gets_the_same_answer_on_both_paths(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    owner, _workspace, url = await _document(people)
    email = f"{owner.id.hex[:8]}@example.test"
    assert (await client.get(url, headers=owner.headers)).status_code == 200  # warm
    for expected, cases in ((200, GOOD), (401, INVALID), (403, NOT_A_USER)):
        for name, case in cases.items():
            headers = case(owner.id, email)
            response, fast = await _both(client, full, "GET", url, headers)
            assert response.status_code == expected, (name, response.text)
            if expected != 200:
                assert not fast, name
            assert response.headers.get("www-authenticate") == (
                await full.get(url, headers=headers)
            ).headers.get("www-authenticate"), name
    _, fast = await _both(client, full, "GET", url, GOOD["supabase shaped"](owner.id, email))
    assert fast, "a good token's warm read is the fast path's"


async def test_jwks_tokens_get_the_same_answer_on_both_paths(
    settings: Settings, people: People, issuer: Issuer
) -> None:
    issuer.publish(ES256, RS256)
    configured = Settings(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
        jwt_jwks_url=issuer.url,
    )
    owner, _workspace, url = await _document(people)
    user, email = owner.id, f"{owner.id.hex[:8]}@example.test"
    stranger = SigningKey.new("ES256")
    tokens = {
        "ES256": (200, ES256.sign(claims(user, email=email))),
        "RS256": (200, RS256.sign(claims(user, email=email))),
        "unknown kid": (401, stranger.sign(claims(user, email=email))),
        "wrong issuer": (401, ES256.sign(claims(user, email=email, iss="https://other.example"))),
        "expired": (
            401,
            ES256.sign(claims(user, email=email, exp=datetime.now(UTC) - timedelta(minutes=5))),
        ),
        "anon": (403, ES256.sign(claims(user, email=email, role="anon"))),
        "upper-case sub": (401, ES256.sign(claims(user, email=email, sub=str(user).upper()))),
        "embedded jwk": (401, stranger.sign(claims(user, email=email), jwk=stranger.jwk)),
    }
    fast_app, full_app = _apps(configured)
    async with fast_app as fast_client, full_app as full_client:
        warm = {"Authorization": f"Bearer {tokens['ES256'][1]}"}
        assert (await fast_client.get(url, headers=warm)).status_code == 200
        for name, (expected, token) in tokens.items():
            headers = {"Authorization": f"Bearer {token}"}
            response, fast = await _both(fast_client, full_client, "GET", url, headers)
            assert (response.status_code, fast) == (expected, expected == 200), name
