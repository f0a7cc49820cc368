"""Bad input gets a clear RFC 9457 problem, never a 500 or a traceback."""

from __future__ import annotations

import uuid

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from entrypoints.http.app import create_app
from entrypoints.settings import ConfigError, Settings
from tests.conftest import People


def _is_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        ({"name": "x", "id": str(uuid.uuid4())}, "id"),
        ({"name": "x", "created_by": str(uuid.uuid4())}, "created_by"),
        ({"name": 42}, "name"),
        ({}, "name"),
    ],
    ids=["id", "created_by", "wrong type", "missing"],
)
async def test_invalid_bodies_name_the_bad_field(
    client: httpx.AsyncClient, people: People, body: dict[str, object], bad_field: str
) -> None:
    user = await people.new()
    problem = _is_problem(await client.post("/v1/workspaces", json=body, headers=user.headers), 400)
    assert bad_field in str(problem["errors"])


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
async def test_workspace_names_are_checked(
    client: httpx.AsyncClient, people: People, name: str
) -> None:
    user = await people.new()
    response = await client.post("/v1/workspaces", json={"name": name}, headers=user.headers)
    assert "name" in str(_is_problem(response, 400)["detail"])


async def test_malformed_json_and_unknown_roles(client: httpx.AsyncClient, people: People) -> None:
    user = await people.new()
    workspace = await people.workspace(user)
    headers = {**user.headers, "content-type": "application/json"}
    _is_problem(await client.post("/v1/workspaces", content=b"{nope", headers=headers), 400)
    _is_problem(
        await client.post(
            f"/v1/workspaces/{workspace}/members",
            json={"user_id": str(user.id), "role": "god"},
            headers=user.headers,
        ),
        400,
    )


async def test_oversized_bodies_are_refused(client: httpx.AsyncClient, people: People) -> None:
    user = await people.new()
    huge = {"name": "x" * (1024 * 1024 + 1)}
    _is_problem(await client.post("/v1/workspaces", json=huge, headers=user.headers), 413)


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "cursor=%%%", "cursor=AAAA"])
async def test_bad_paging_parameters(client: httpx.AsyncClient, people: People, query: str) -> None:
    user = await people.new()
    _is_problem(await client.get(f"/v1/workspaces?{query}", headers=user.headers), 400)


async def test_unknown_routes_and_ids(client: httpx.AsyncClient, people: People) -> None:
    user = await people.new()
    _is_problem(await client.get("/v1/nothing-here", headers=user.headers), 404)
    _is_problem(await client.get(f"/v1/workspaces/{uuid.uuid4()}", headers=user.headers), 404)
    response = await client.get("/v1/workspaces/not-a-uuid", headers=user.headers)
    assert response.status_code in (400, 404)
    _is_problem(response, response.status_code)


async def test_probes_and_schema_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}
    schema = await client.get("/schema/openapi.json")
    assert schema.status_code == 200
    assert "/v1/workspaces/{workspace_id}/members" in schema.json()["paths"]


async def test_readyz_says_503_when_redis_is_down(settings: Settings, tmp_path) -> None:
    dead = msgspec.structs.replace(
        settings, redis_url=f"unix://{tmp_path}/no-redis.sock", redis_cluster=False
    )
    async with AsyncTestClient(create_app(dead)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["checks"]["postgres"] == "ok"
    assert response.json()["checks"]["redis"].startswith("down")


def test_the_app_will_not_build_without_its_settings() -> None:
    with pytest.raises(ConfigError) as missing:
        create_app(Settings())
    assert len(missing.value.problems) == 3
    assert "KEEL_DATABASE_URL is required but not set" in missing.value.problems
