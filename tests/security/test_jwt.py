"""Authentication: every malformed, forged or stale credential gets 401."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from litestar.exceptions import NotAuthorizedException

from entrypoints.http.claims import Identity
from entrypoints.http.tokens import TokenVerifier
from tests.conftest import AUDIENCE, JWT_SECRET


def _claims(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, default=lambda d: int(d.timestamp())).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


FORGED = {
    "alg none": _unsigned(_claims()),
    "bad signature": jwt.encode(_claims(), "another-secret-" + "y" * 40, algorithm="HS256"),
    "other algorithm, same secret": jwt.encode(_claims(), JWT_SECRET, algorithm="HS512"),
    "expired": jwt.encode(
        _claims(exp=datetime.now(UTC) - timedelta(seconds=60)), JWT_SECRET, algorithm="HS256"
    ),
    "wrong audience": jwt.encode(_claims(aud="someone-else"), JWT_SECRET, algorithm="HS256"),
    "no audience": jwt.encode(_claims(aud=None), JWT_SECRET, algorithm="HS256"),
    "no subject": jwt.encode(_claims(sub=None), JWT_SECRET, algorithm="HS256"),
    "no expiry": jwt.encode(_claims(exp=None), JWT_SECRET, algorithm="HS256"),
    "subject not a UUID": jwt.encode(_claims(sub="admin"), JWT_SECRET, algorithm="HS256"),
    "garbage": "not.a.jwt",
}


@pytest.mark.parametrize("token", FORGED.values(), ids=FORGED.keys())
async def test_forged_or_stale_tokens_are_refused(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}],
    ids=["missing", "basic", "empty bearer"],
)
async def test_missing_credentials_are_refused(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    assert (await client.get("/v1/workspaces", headers=headers)).status_code == 401


async def test_a_supabase_shaped_token_works_and_registers_the_profile(
    client: httpx.AsyncClient,
) -> None:
    user = uuid.uuid4()
    claims = _claims(
        sub=str(user),
        email="a@example.test",
        role="authenticated",
        app_metadata={"provider": "email"},
    )
    headers = {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}
    me = await client.get("/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["id"] == str(user)
    assert me.json()["email"] == "a@example.test"

    claims["email"] = "b@example.test"
    headers = {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}
    assert (await client.get("/v1/me", headers=headers)).json()["email"] == "b@example.test"


async def test_a_remembered_token_is_still_refused_once_expired() -> None:
    verifier = TokenVerifier(audience=AUDIENCE, secret=JWT_SECRET, leeway_s=0)
    encoded = jwt.encode(
        _claims(exp=datetime.now(UTC) - timedelta(seconds=1)), JWT_SECRET, algorithm="HS256"
    )
    remembered = Identity(uuid.uuid4(), None, int(time.time()) + 30)
    verifier._remembered[encoded] = remembered
    # While the remembered copy has not expired, it is what verify returns…
    assert await verifier.verify(encoded) is remembered
    # …and once it has, the token is verified afresh, and refused.
    verifier._remembered[encoded] = replace(remembered, expires_at=int(time.time()) - 1)
    with pytest.raises(NotAuthorizedException):
        await verifier.verify(encoded)


async def test_a_changed_signature_is_verified_afresh() -> None:
    verifier = TokenVerifier(audience=AUDIENCE, secret=JWT_SECRET)
    good = jwt.encode(_claims(), JWT_SECRET, algorithm="HS256")
    assert (await verifier.verify(good)).user_id
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    with pytest.raises(NotAuthorizedException):
        await verifier.verify(forged)
