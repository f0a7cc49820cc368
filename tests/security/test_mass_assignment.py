"""Mass assignment: no body of the API sets what the server owns.

Every request body of the API (the tenant matrix's, and creating a
workspace) is sent with one more field each, of the names an attacker
tries: `workspace_id`, `id`, `created_by`, `role`, `status`, `version`
(where the route does not take it), and a task's `input` with them too.
Each is a 400 that names the field, and nothing changed: the document keeps
its version and author, the task stays queued, the caller's role is theirs.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import People, Person
from tests.security.test_tenant_matrix import MATRIX, NEW_TASK, Cast, Route, _cast, _request

OWNED = {
    "workspace_id": str(uuid.uuid4()),
    "id": str(uuid.uuid4()),
    "created_by": str(uuid.uuid4()),
    "role": "owner",
    "status": "succeeded",
    "version": 99,
}
# The UI-state value is the caller's own opaque JSON: any field is data there.
BODIES = [
    route for route in MATRIX if route.body is not None and "/ui-state/" not in route.path
] + [Route("POST", "/v1/workspaces", "viewer", {"name": "mine"})]
CASES = [
    (route, field)
    for route in BODIES
    for field in OWNED
    if route.body is not None and field not in route.body
]


@pytest.fixture(scope="module")
async def cast(client: httpx.AsyncClient, owner_engine: AsyncEngine) -> Cast:
    """One workspace for the module: every request here is refused."""
    return await _cast(People(client), owner_engine)


def _problem_names(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in str(response.json().get("errors", response.json()["detail"])), response.text


@pytest.mark.parametrize(
    ("route", "field"), CASES, ids=[f"{r.method} {r.path} +{f}" for r, f in CASES]
)
async def test_a_field_the_server_owns_is_a_400_in_every_body(
    client: httpx.AsyncClient, cast: Cast, route: Route, field: str
) -> None:
    request = _request(route, cast)
    request["json"] = {**request["json"], field: OWNED[field]}
    response = await client.request(**request, headers=cast.by_role["owner"].headers)
    _problem_names(response, field)


@pytest.mark.parametrize("field", sorted(OWNED))
async def test_a_field_the_server_owns_inside_a_tasks_input_is_a_400(
    client: httpx.AsyncClient, cast: Cast, field: str
) -> None:
    body: dict[str, Any] = {**NEW_TASK, "input": {**NEW_TASK["input"], field: OWNED[field]}}
    response = await client.post(
        f"/v1/workspaces/{cast.workspace}/tasks", json=body, headers=cast.by_role["owner"].headers
    )
    _problem_names(response, field)


async def test_nothing_was_changed_by_the_refused_bodies(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    """After every case above: the cast's objects are as they were made."""
    owner: Person = cast.by_role["owner"]
    base = f"/v1/workspaces/{cast.workspace}"
    document = (
        await client.get(f"{base}/foundation/{cast.document}", headers=owner.headers)
    ).json()
    assert (document["version"], document["created_by"], document["workspace_id"]) == (
        1,
        str(owner.id),
        str(cast.workspace),
    )
    task = (await client.get(f"{base}/tasks/{cast.task}", headers=owner.headers)).json()
    assert (task["status"], task["created_by"]) == ("queued", str(owner.id))
    members = (await client.get(f"{base}/members?limit=100", headers=owner.headers)).json()
    roles = {item["user_id"]: item["role"] for item in members["items"]}
    assert roles[str(cast.target.id)] == "viewer"
    assert [r for r in roles.values() if r == "owner"] == ["owner"]
    mine = (await client.get("/v1/workspaces?limit=100", headers=owner.headers)).json()
    assert [w["name"] for w in mine["items"]] == ["Acme"]
