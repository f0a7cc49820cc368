"""What a web app on another origin needs: CORS (KEEL_CORS_ORIGINS) and JSON bodies only.

The default app (no KEEL_CORS_ORIGINS) lets no origin in; an app configured
with one answers its preflights and marks its answers, on the full path and
on the cached-read fast path alike, and still refuses every other origin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.conftest import People

APP_ORIGIN = "http://localhost:3000"
OTHER_ORIGINS = ["http://evil.example", "http://localhost:3001", "https://localhost:3000", "null"]


@pytest.fixture(scope="module")
async def cors_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = msgspec.structs.replace(
        settings, cors_origins=f"{APP_ORIGIN}, https://app.example.com"
    )
    async with AsyncTestClient(create_app(configured)) as test_client:
        yield test_client


def _preflight(origin: str, method: str = "POST", headers: str = "authorization, content-type"):
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_a_preflight_from_an_allowed_origin_is_answered(cors_client) -> None:
    for path, method in [
        ("/v1/workspaces", "POST"),
        (f"/v1/workspaces/{'0' * 8}-0000-0000-0000-{'0' * 12}/foundation", "GET"),
        (f"/v1/workspaces/{'0' * 8}-0000-0000-0000-{'0' * 12}/ui-state/panel", "PUT"),
    ]:
        response = await cors_client.options(path, headers=_preflight(APP_ORIGIN, method))
        assert response.status_code == 204, (path, response.text)
        assert response.headers["access-control-allow-origin"] == APP_ORIGIN
        allowed = response.headers["access-control-allow-methods"]
        assert method in allowed
        assert "authorization" in response.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize("origin", OTHER_ORIGINS)
async def test_a_preflight_from_any_other_origin_is_refused(cors_client, origin) -> None:
    response = await cors_client.options("/v1/workspaces", headers=_preflight(origin))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_answers_to_an_allowed_origin_carry_cors_headers_on_every_path(
    cors_client, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    document = await people.document(
        workspace, owner, {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}}
    )
    path = f"/v1/workspaces/{workspace}/foundation/{document}"
    # The second read is a cache hit: the fast path would answer it without an Origin.
    for _ in range(2):
        response = await cors_client.get(path, headers={**owner.headers, "Origin": APP_ORIGIN})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "etag" in response.headers["access-control-expose-headers"].lower()
        assert response.headers["vary"] == "Origin"
    refused = await cors_client.get(f"/v1/workspaces/{workspace}", headers={"Origin": APP_ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == APP_ORIGIN  # the page can read why
    stranger = await cors_client.get(path, headers={**owner.headers, "Origin": OTHER_ORIGINS[0]})
    assert "access-control-allow-origin" not in stranger.headers


async def test_without_the_setting_no_origin_is_allowed(client, people: People) -> None:
    owner = await people.new()
    preflight = await client.options("/v1/workspaces", headers=_preflight(APP_ORIGIN))
    assert "access-control-allow-origin" not in preflight.headers
    response = await client.get("/v1/me", headers={**owner.headers, "Origin": APP_ORIGIN})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=latin-1",
        "application/jsonp",
        "json",
    ],
)
async def test_a_body_that_is_not_json_is_415(client, people: People, content_type) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    body = b'{"name": "Acme"}'
    for method, path in [
        ("POST", "/v1/workspaces"),
        ("PATCH", f"/v1/workspaces/{workspace}"),
        ("PUT", f"/v1/workspaces/{workspace}/ui-state/panel"),
        ("POST", f"/v1/workspaces/{workspace}/tasks"),
    ]:
        response = await client.request(
            method, path, content=body, headers={**owner.headers, "Content-Type": content_type}
        )
        assert response.status_code == 415, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "application/json" in response.json()["detail"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=UTF-8", "Application/JSON", None],
)
async def test_json_bodies_are_taken_with_or_without_a_content_type(
    client, people: People, content_type
) -> None:
    owner = await people.new()
    headers = dict(owner.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await client.post("/v1/workspaces", content=b'{"name": "Acme"}', headers=headers)
    assert response.status_code == 201, response.text


async def test_a_bodiless_post_is_never_refused_for_its_content_type(
    client, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    response = await client.post(
        f"/v1/workspaces/{workspace}/stream-tickets",
        headers={**owner.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text
