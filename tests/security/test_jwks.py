"""Supabase's asymmetric tokens: ES256 and RS256 keys published as a JWKS,
served by the test itself (a local HTTP server, or a file), read by Keel's
KeySet (entrypoints/http/jwks.py) and chosen by `kid`.

On main Keel knew one HS256 secret; none of these tokens was accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from litestar.testing import AsyncTestClient

from entrypoints.http.app import create_app
from entrypoints.http.jwks import KeySet, parse
from entrypoints.settings import Settings
from tests.conftest import AUDIENCE, JWT_SECRET
from tests.security.jwks_issuer import ISSUER, Issuer, SigningKey, claims, serving_jwks


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serving_jwks() as published:
        yield published


@asynccontextmanager
async def api(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    configured = Settings(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
        **changes,
    )
    async with AsyncTestClient(create_app(configured)) as client:
        yield client


async def _me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


ES256, RS256 = SigningKey.new("ES256"), SigningKey.new("RS256")


@pytest.mark.parametrize("key", [ES256, RS256], ids=["ES256", "RS256"])
async def test_tokens_signed_with_a_published_key_are_users(
    settings: Settings, issuer: Issuer, key: SigningKey
) -> None:
    issuer.publish(ES256, RS256)
    user = uuid.uuid4()
    async with api(settings, jwt_jwks_url=issuer.url) as client:
        me = await _me(client, key.sign(claims(user)))
        assert me.status_code == 200, me.text
        assert me.json()["id"] == str(user)


async def test_the_file_form_and_the_secret_beside_it(
    settings: Settings, issuer: Issuer, tmp_path: Path
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [ES256.jwk]}))
    async with api(settings, jwt_jwks_url=str(jwks), jwt_secret=JWT_SECRET) as client:
        assert (await _me(client, ES256.sign(claims(uuid.uuid4())))).status_code == 200
        hs256 = jwt.encode(claims(uuid.uuid4()), JWT_SECRET, algorithm="HS256")
        assert (await _me(client, hs256)).status_code == 200
        assert (await _me(client, RS256.sign(claims(uuid.uuid4())))).status_code == 401


def _refusals(user: uuid.UUID) -> dict[str, str]:
    stranger = SigningKey.new("ES256")
    rs_public_pem = RS256.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "unknown kid": SigningKey("not-published", "ES256", ES256.private).sign(claims(user)),
        "unpublished key under a published kid": SigningKey(
            ES256.kid, "ES256", stranger.private
        ).sign(claims(user)),
        "no kid": jwt.encode(claims(user), ES256.private, algorithm="ES256"),
        "wrong issuer": ES256.sign(claims(user, iss="https://attacker.example/auth/v1")),
        "no issuer": ES256.sign(claims(user, iss=...)),
        "expired": ES256.sign(claims(user, exp=datetime.now(UTC) - timedelta(minutes=5))),
        "iat past the leeway": ES256.sign(claims(user, iat=datetime.now(UTC) + timedelta(hours=1))),
        "ES256 header on the RSA key's kid": SigningKey(RS256.kid, "ES256", ES256.private).sign(
            claims(user)
        ),
        "HS256 keyed with the RSA public key": _hmac_with(rs_public_pem, claims(user), RS256.kid),
        "HS256 keyed with a published oct key": _hmac_with(b"published-oct", claims(user), "oct"),
        "embedded jwk of the signer": stranger.sign(claims(user), jwk=stranger.jwk),
        "jku to the signer's set": stranger.sign(claims(user), jku="https://attacker.example/j"),
        "anon role": ES256.sign(claims(user, role="anon")),
        "service_role": ES256.sign(claims(user, role="service_role")),
        "anonymous sign-in": ES256.sign(claims(user, is_anonymous=True)),
        "upper-case sub": ES256.sign(claims(user, sub=str(user).upper())),
    }


def _hmac_with(secret: bytes, payload: dict[str, Any], kid: str) -> str:
    """An HS256 token keyed with `secret`, bypassing PyJWT's refusal to use a PEM as one."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = part(json.dumps(payload, default=lambda d: int(d.timestamp())).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{part(signature)}"


FORBIDDEN = {"anon role", "service_role", "anonymous sign-in"}


@pytest.mark.parametrize("secret", [None, JWT_SECRET], ids=["JWKS only", "JWKS and secret"])
async def test_forged_confused_and_foreign_tokens_are_refused(
    settings: Settings, issuer: Issuer, secret: str | None
) -> None:
    oct_key = {"kty": "oct", "kid": "oct", "k": "cHVibGlzaGVkLW9jdA", "alg": "HS256"}
    issuer.publish(ES256, RS256, extra=[oct_key])
    async with api(settings, jwt_jwks_url=issuer.url, jwt_secret=secret) as client:
        for name, token in _refusals(uuid.uuid4()).items():
            response = await _me(client, token)
            expected = 403 if name in FORBIDDEN else 401
            assert response.status_code == expected, (name, response.text)
            assert response.headers["content-type"] == "application/problem+json", name
            assert response.headers["www-authenticate"].startswith("Bearer error="), name


async def test_unknown_kids_cost_at_most_one_read(settings: Settings, issuer: Issuer) -> None:
    issuer.publish(ES256)
    async with api(settings, jwt_jwks_url=issuer.url) as client:
        assert issuer.reads == 1, "read at start-up"
        assert (await _me(client, ES256.sign(claims(uuid.uuid4())))).status_code == 200
        reads = issuer.reads
        for _ in range(25):
            made_up = SigningKey(uuid.uuid4().hex, "ES256", ES256.private)
            assert (await _me(client, made_up.sign(claims(uuid.uuid4())))).status_code == 401
        assert issuer.reads - reads <= 1


async def test_a_rotated_in_key_is_found_and_a_retired_one_refused(
    settings: Settings, issuer: Issuer
) -> None:
    new = SigningKey.new("ES256")
    issuer.publish(ES256)
    user = uuid.uuid4()
    retired = ES256.sign(claims(user))
    async with api(settings, jwt_jwks_url=issuer.url, jwt_jwks_refresh_s=1) as client:
        assert (await _me(client, retired)).status_code == 200
        issuer.publish(ES256, new)
        await anyio.sleep(1.1)  # the set is re-read once it is refresh_s old
        assert (await _me(client, new.sign(claims(user)))).status_code == 200
        issuer.publish(new)
        await anyio.sleep(1.1)
        assert (await _me(client, new.sign(claims(user)))).status_code == 200
        # Remembered before, but its key is gone now.
        assert (await _me(client, retired)).status_code == 401


async def test_an_unreachable_key_set_is_a_503_not_a_500(settings: Settings) -> None:
    async with api(settings, jwt_jwks_url="http://127.0.0.1:9/jwks.json") as client:
        response = await _me(client, ES256.sign(claims(uuid.uuid4())))
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"]
        assert response.headers["content-type"] == "application/problem+json"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_key_set_reads_again_when_due_or_for_a_new_kid_at_most_every_30_s(
    tmp_path: Path,
) -> None:
    jwks, clock, reads = tmp_path / "jwks.json", Clock(), []
    keys = KeySet(str(jwks), refresh_s=300, clock=clock)
    original = keys._fetch

    async def counted() -> bytes:
        reads.append(clock.now)
        return await original()

    keys._fetch = counted  # type: ignore[method-assign]
    new = SigningKey.new("RS256")
    jwks.write_text(json.dumps({"keys": [ES256.jwk]}))
    assert await keys.key(ES256.kid) is not None
    jwks.write_text(json.dumps({"keys": [ES256.jwk, new.jwk]}))
    for _ in range(10):
        assert await keys.key(new.kid) is None  # read less than 30 s ago
    clock.now += 31
    assert await keys.key(new.kid) is not None  # one read for the new kid
    for made_up in range(10):
        assert await keys.key(f"made-up-{made_up}") is None
    clock.now += 300
    assert await keys.key(ES256.kid) is not None  # due
    assert reads == [1000.0, 1031.0, 1331.0]


async def test_a_failed_read_keeps_the_keys_and_is_tried_again_after_5_s(tmp_path: Path) -> None:
    jwks, clock = tmp_path / "jwks.json", Clock()
    keys = KeySet(str(jwks), refresh_s=60, clock=clock)
    jwks.write_text(json.dumps({"keys": [ES256.jwk]}))
    assert await keys.key(ES256.kid) is not None
    generation = keys.generation
    clock.now += 60
    jwks.write_text("{not json")
    assert await keys.key(ES256.kid) is not None, "the keys it had"
    jwks.write_text(json.dumps({"keys": [RS256.jwk]}))
    clock.now += 4
    assert await keys.key(ES256.kid) is not None, "not tried again yet"
    clock.now += 1
    assert await keys.key(ES256.kid) is None
    assert keys.generation == generation + 1


@pytest.mark.parametrize(
    "entry",
    [
        {"kty": "oct", "kid": "k", "k": "c2VjcmV0"},
        {**ES256.jwk, "use": "enc"},
        {**ES256.jwk, "alg": "ES384"},
        {**RS256.jwk, "alg": "RS512"},
        {**RS256.jwk, "alg": "HS256"},
        {key: value for key, value in ES256.jwk.items() if key != "kid"},
        {**ES256.jwk, "kid": 7},
        {**ES256.jwk, "x": "not-base64!"},
        {
            "kty": "OKP",
            "kid": "k",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        },
        "not an object",
    ],
    ids=[
        "oct",
        "enc",
        "ES384",
        "RS512",
        "RSA as HS256",
        "no kid",
        "kid number",
        "bad x",
        "EdDSA",
        "text",
    ],
)
def test_only_es256_and_rs256_signing_keys_are_kept(entry: object) -> None:
    assert list(parse({"keys": [entry, RS256.jwk]})) == [RS256.kid]
