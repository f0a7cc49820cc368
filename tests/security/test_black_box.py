"""Black-box attacks on a running stack, over a real socket, knowing only its
URL and its token secret: `keel audit --url URL` aims them at a running API
(KEEL_AUDIT_URL, KEEL_AUDIT_JWT_SECRET, KEEL_AUDIT_JWT_AUDIENCE), and
without one they go to a server started here as `keel api` serves
(tests/live.py, on the tests' services, which the rest of the suite starts
anyway). Users and workspaces are made through the API with fresh
ids, so a shared stack keeps its data apart from theirs.

Forged tokens on every route; another tenant's ids answered like missing
ones; hostile bodies, paths and query strings (a 4xx problem, never a 5xx);
the headers that keep a browser from running an answer.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from entrypoints.settings import Settings
from tests.conftest import AUDIENCE, JWT_SECRET
from tests.live import serving

DOCUMENT = {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}, "tags": []}
TASK = {"kind": "summarize", "input": {"text": "a black-box task"}}


@dataclass
class Stack:
    http: httpx.AsyncClient
    secret: str
    audience: str

    def token(self, sub: object, headers: dict[str, Any] | None = None, **changes: Any) -> str:
        now = datetime.now(UTC)
        claims = {"sub": str(sub), "aud": self.audience, "iat": now, "role": "authenticated"}
        claims["exp"] = now + timedelta(minutes=10)
        claims.update(changes)
        return jwt.encode(claims, self.secret, algorithm="HS256", headers=headers)

    def auth(self, user: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}


@dataclass
class Tenant:
    user: uuid.UUID
    headers: dict[str, str]
    workspace: str
    document: str
    task: str


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    url = os.environ.get("KEEL_AUDIT_URL")
    if url:
        audience = os.environ.get("KEEL_AUDIT_JWT_AUDIENCE", AUDIENCE)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield Stack(http, os.environ["KEEL_AUDIT_JWT_SECRET"], audience)
        return
    async with (
        serving(settings) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):
        yield Stack(http, JWT_SECRET, AUDIENCE)


async def _tenant(stack: Stack) -> Tenant:
    user = uuid.uuid4()
    headers = stack.auth(user)
    created = await stack.http.post("/v1/workspaces", json={"name": "audit"}, headers=headers)
    assert created.status_code == 201, created.text
    base = f"/v1/workspaces/{created.json()['id']}"
    document = await stack.http.post(f"{base}/foundation", json=DOCUMENT, headers=headers)
    task = await stack.http.post(f"{base}/tasks", json=TASK, headers=headers)
    assert (document.status_code, task.status_code) == (201, 202), (document.text, task.text)
    return Tenant(user, headers, created.json()["id"], document.json()["id"], task.json()["id"])


@pytest.fixture(scope="module")
async def tenants(stack: Stack) -> tuple[Tenant, Tenant]:
    return await _tenant(stack), await _tenant(stack)


def _routes(tenant: Tenant) -> list[tuple[str, str, Any]]:
    base = f"/v1/workspaces/{tenant.workspace}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"name": "taken"}),
        ("DELETE", base, None),
        ("GET", f"{base}/members", None),
        ("GET", f"{base}/foundation", None),
        ("GET", f"{base}/foundation/{tenant.document}", None),
        ("PATCH", f"{base}/foundation/{tenant.document}", {"title": "taken"}),
        ("DELETE", f"{base}/foundation/{tenant.document}", None),
        ("GET", f"{base}/tasks", None),
        ("GET", f"{base}/tasks/{tenant.task}", None),
        ("POST", f"{base}/tasks/{tenant.task}/cancel", None),
        ("POST", f"{base}/stream-tickets", {"task_id": tenant.task}),
        ("GET", f"{base}/ui-state", None),
        ("GET", f"{base}/webhook", None),
        ("GET", f"{base}/dead-letters", None),
    ]


def _forged(stack: Stack, user: uuid.UUID) -> dict[str, str]:
    def unsigned() -> str:
        def part(data: dict[str, Any]) -> str:
            raw = json.dumps(data).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        exp = int((datetime.now(UTC) + timedelta(minutes=10)).timestamp())
        body = {"sub": str(user), "aud": stack.audience, "exp": exp}
        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(body)}."

    ahead = datetime.now(UTC) + timedelta(hours=1)
    return {
        "alg none": unsigned(),
        "another secret": jwt.encode({"sub": str(user), "aud": stack.audience}, "x" * 64),
        "expired": stack.token(user, exp=datetime.now(UTC) - timedelta(hours=1)),
        "another audience": stack.token(user, aud="someone-else"),
        "sub not a UUID": stack.token("admin"),
        "sub upper case": stack.token(str(user).upper()),
        "nbf ahead": stack.token(user, nbf=ahead),
        "iat ahead": stack.token(user, iat=ahead),
        "jku": stack.token(user, headers={"jku": "https://attacker.example/jwks.json"}),
        "x5u": stack.token(user, headers={"x5u": "https://attacker.example/cert.pem"}),
        "crit": stack.token(user, headers={"crit": ["exp"]}),
        "huge": stack.token(user, padding="x" * 9000),
        "garbage": "not.a.token",
    }


async def test_forged_tokens_open_no_route(stack: Stack, tenants: tuple[Tenant, Tenant]) -> None:
    mine, _ = tenants
    for name, token in _forged(stack, mine.user).items():
        for method, url, body in [("GET", "/v1/me", None), *_routes(mine)]:
            answer = await stack.http.request(
                method, url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 401, (name, method, url, answer.text)
            assert answer.headers["www-authenticate"].startswith("Bearer"), name
    still = await stack.http.get(f"/v1/workspaces/{mine.workspace}", headers=mine.headers)
    assert still.status_code == 200


def _shape(answer: httpx.Response, ids: list[str]) -> tuple[int, str, str]:
    text = answer.text
    for value in ids:
        text = text.replace(value, "<id>")
    return answer.status_code, answer.headers["content-type"], text


async def test_another_tenants_ids_answer_like_missing_ones(
    stack: Stack, tenants: tuple[Tenant, Tenant]
) -> None:
    mine, theirs = tenants
    nobody = Tenant(uuid.uuid4(), {}, str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()))
    ids = [theirs.workspace, theirs.document, theirs.task, nobody.workspace, nobody.document]
    ids.append(nobody.task)
    for (method, url, body), (_, missing, absent_body) in zip(
        _routes(theirs), _routes(nobody), strict=True
    ):
        foreign = await stack.http.request(method, url, json=body, headers=mine.headers)
        absent = await stack.http.request(method, missing, json=absent_body, headers=mine.headers)
        assert foreign.status_code == 404, (method, url, foreign.text)
        assert _shape(foreign, ids) == _shape(absent, ids), (method, url)
    intact = await stack.http.get(
        f"/v1/workspaces/{theirs.workspace}/foundation/{theirs.document}", headers=theirs.headers
    )
    assert intact.json()["title"] == DOCUMENT["title"]


# A UI-state value is the caller's own JSON: any field is data there.
MASS_ASSIGNMENT = b'{"name": "a", "id": "00000000-0000-0000-0000-000000000001"}'
HOSTILE_BODIES = [
    MASS_ASSIGNMENT,
    b'{"name": "a", "name": "b"}',
    b'{"name": "\xff\xfe"}',
    b'{"name": "a\\u0000"}',
    b'{"name": "\\ud800"}',
    b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}',
    b'{"name": 1e999}',
    b"\x00\x01\x02",
    b"",
]


async def test_hostile_bodies_are_4xx_problems(
    stack: Stack, tenants: tuple[Tenant, Tenant]
) -> None:
    mine, _ = tenants
    headers = {**mine.headers, "content-type": "application/json"}
    for raw in HOSTILE_BODIES:
        for method, url in [
            ("POST", "/v1/workspaces"),
            ("PATCH", f"/v1/workspaces/{mine.workspace}"),
            ("POST", f"/v1/workspaces/{mine.workspace}/foundation"),
            ("PUT", f"/v1/workspaces/{mine.workspace}/ui-state/audit"),
        ]:
            if raw is MASS_ASSIGNMENT and "/ui-state/" in url:
                continue
            answer = await stack.http.request(method, url, content=raw, headers=headers)
            assert 400 <= answer.status_code < 500, (method, url, raw[:40], answer.text[:200])
            assert answer.headers["content-type"] == "application/problem+json"


async def test_hostile_paths_and_queries_are_never_5xx(
    stack: Stack, tenants: tuple[Tenant, Tenant]
) -> None:
    mine, _ = tenants
    base = f"/v1/workspaces/{mine.workspace}"
    for url in [
        "/v1/workspaces/..%2f..%2fetc%2fpasswd",
        "/v1/workspaces/%00",
        f"/v1/workspaces/{'a' * 4000}",
        f"{base}/foundation/not-a-uuid",
        f"{base}/foundation/{mine.document}%00",
        f"{base}/foundation?limit=1&limit=2",
        f"{base}/foundation?kind=%ff%fe",
        f"{base}/foundation?contains=%7B%22a%22%3A1%2C%22a%22%3A2%7D",
        f"{base}/tasks?status=%00",
        f"{base}/tasks?cursor=" + "A" * 3000,
        f"{base}/ui-state/{'k' * 300}",
        f"{base}/ui-state/%2e%2e",
    ]:
        answer = await stack.http.get(url, headers=mine.headers)
        assert 400 <= answer.status_code < 500, (url, answer.text[:200])


async def test_no_answer_can_be_run_by_a_browser(
    stack: Stack, tenants: tuple[Tenant, Tenant]
) -> None:
    mine, _ = tenants
    console = await stack.http.get("/console")
    policy = console.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'sha256-" in policy
    assert "unsafe" not in policy
    for url in ["/v1/me", f"/v1/workspaces/{mine.workspace}/foundation", "/v1/nothing/<script>"]:
        answer = await stack.http.get(url, headers=mine.headers)
        assert answer.headers["x-content-type-options"] == "nosniff", url
        assert answer.headers["content-security-policy"].startswith("default-src 'none'"), url
