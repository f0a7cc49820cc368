"""Every workspace-scoped route and method, tried by every kind of caller:
outsiders (members of another workspace) get 404, roles below the route's
minimum get 403, the minimum role and every role above it succeed. A new route that is not in the
matrix fails the coverage test, so none can be forgotten."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import People, Person

ROLES = ["viewer", "member", "admin", "owner"]
WS = "/v1/workspaces/{workspace_id}"
MEMBER = WS + "/members/{user_id}"
DOCUMENT = WS + "/foundation/{document_id}"
TASK = WS + "/tasks/{task_id}"
UI_STATE = WS + "/ui-state/{key:str}"
DEAD_LETTER = WS + "/dead-letters/{task_id}"
UI_KEY = "panel.left"
NEW_TASK = {"kind": "summarize", "input": {"text": "a long text"}}
# A public address literal: it resolves to itself, so no DNS is needed.
HOOK = {"url": "https://93.184.215.14/keel"}
NEW_DOCUMENT = {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}, "tags": ["a"]}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    minimum: str
    body: dict[str, Any] | None = None


MATRIX = [
    Route("GET", WS, "viewer"),
    Route("PATCH", WS, "admin", {"name": "renamed"}),
    Route("DELETE", WS, "owner"),
    Route("GET", WS + "/members", "viewer"),
    Route("POST", WS + "/members", "admin", {"user_id": "{newcomer}", "role": "member"}),
    Route("PATCH", MEMBER, "admin", {"role": "member"}),
    Route("DELETE", MEMBER, "admin"),
    Route("GET", WS + "/foundation", "viewer"),
    Route("POST", WS + "/foundation", "member", NEW_DOCUMENT),
    Route("GET", DOCUMENT, "viewer"),
    Route("PATCH", DOCUMENT, "member", {"title": "Voice 2"}),
    Route("DELETE", DOCUMENT, "member"),
    Route("GET", WS + "/tasks", "viewer"),
    Route("POST", WS + "/tasks", "member", NEW_TASK),
    Route("GET", TASK, "viewer"),
    Route("POST", TASK + "/cancel", "member"),
    Route("GET", WS + "/ui-state", "viewer"),
    Route("GET", UI_STATE, "viewer"),
    Route("PUT", UI_STATE, "member", {"open": True}),
    Route("DELETE", UI_STATE, "member"),
    Route("POST", WS + "/stream-tickets", "viewer", {"task_id": "{task}"}),
    Route("GET", WS + "/dead-letters", "owner"),
    Route("GET", DEAD_LETTER, "owner"),
    Route("POST", DEAD_LETTER + "/replay", "owner"),
    Route("GET", WS + "/webhook", "owner"),
    Route("PUT", WS + "/webhook", "owner", HOOK),
    Route("DELETE", WS + "/webhook", "owner"),
]
# Event streams never end, so tests/security/test_event_isolation.py checks
# them through a real server.
STREAMS = {("GET", WS + "/events"), ("GET", TASK + "/events")}


def test_the_matrix_covers_every_workspace_route(client: httpx.AsyncClient) -> None:
    app: Litestar = client.app  # type: ignore[attr-defined]
    routes = {
        (method, route.path.replace(":uuid", ""))
        for route in app.routes
        if "{workspace_id" in route.path
        for method in route.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == {(r.method, r.path) for r in MATRIX} | STREAMS


@dataclass
class Cast:
    workspace: uuid.UUID
    by_role: dict[str, Person]
    target: Person
    newcomer: Person
    outsider: Person
    document: str
    task: str
    dead_letter: str


async def fail_for_good(owner_engine: AsyncEngine, task_id: str) -> None:
    """What a worker leaves when a task's last attempt failed (as the schema owner)."""
    async with owner_engine.begin() as conn:
        await conn.execute(
            sa.text(
                "update tasks set status = 'failed', attempts = 1, error = 'it broke',"
                " finished_at = now() where id = :t"
            ),
            {"t": task_id},
        )


async def _cast(people: People, owner_engine: AsyncEngine) -> Cast:
    owner = await people.new()
    workspace = await people.workspace(owner)
    by_role = {"owner": owner}
    for role in ROLES[:-1]:
        by_role[role] = await people.join(workspace, owner, role)
    await _keep_ui_state(people, workspace, by_role)
    hook = await people.client.put(
        f"/v1/workspaces/{workspace}/webhook", json=HOOK, headers=owner.headers
    )
    assert hook.status_code == 201, hook.text
    target = await people.join(workspace, owner, "viewer")
    outsider = await people.new()
    await people.workspace(outsider, "their own")
    document = await people.document(workspace, owner, NEW_DOCUMENT)
    task = await people.client.post(
        f"/v1/workspaces/{workspace}/tasks", json=NEW_TASK, headers=owner.headers
    )
    assert task.status_code == 202, task.text
    failed = await people.client.post(
        f"/v1/workspaces/{workspace}/tasks", json=NEW_TASK, headers=owner.headers
    )
    await fail_for_good(owner_engine, failed.json()["id"])
    return Cast(
        workspace,
        by_role,
        target,
        await people.new(),
        outsider,
        document,
        task.json()["id"],
        failed.json()["id"],
    )


async def _keep_ui_state(people: People, workspace: uuid.UUID, by_role: dict[str, Person]) -> None:
    """Every role keeps UI state under UI_KEY, so that reading and deleting it can
    succeed; a viewer can only have written it while it was a member."""
    url = f"/v1/workspaces/{workspace}/ui-state/{UI_KEY}"
    members = f"/v1/workspaces/{workspace}/members/{by_role['viewer'].id}"
    owner = by_role["owner"].headers
    assert (await people.client.patch(members, json={"role": "member"}, headers=owner)).is_success
    for person in by_role.values():
        assert (await people.client.put(url, json=1, headers=person.headers)).is_success
    assert (await people.client.patch(members, json={"role": "viewer"}, headers=owner)).is_success


def _request(route: Route, cast: Cast) -> dict[str, Any]:
    task = cast.dead_letter if "/dead-letters/" in route.path else cast.task
    path = route.path.replace(":str", "").format(
        workspace_id=cast.workspace,
        user_id=cast.target.id,
        document_id=cast.document,
        task_id=task,
        key=UI_KEY,
    )
    body = None
    if route.body is not None:
        names = {"{newcomer}": str(cast.newcomer.id), "{task}": cast.task}
        body = {k: names.get(v, v) if isinstance(v, str) else v for k, v in route.body.items()}
    return {"method": route.method, "url": path, "json": body}


@pytest.mark.parametrize("route", MATRIX, ids=lambda r: f"{r.method} {r.path}")
async def test_route_answers_by_role(
    client: httpx.AsyncClient, people: People, owner_engine: AsyncEngine, route: Route
) -> None:
    cast = await _cast(people, owner_engine)
    request = _request(route, cast)

    outsider = await client.request(**request, headers=cast.outsider.headers)
    assert outsider.status_code == 404, outsider.text
    assert outsider.json()["status"] == 404

    for role in ROLES[: ROLES.index(route.minimum)]:
        denied = await client.request(**request, headers=cast.by_role[role].headers)
        assert denied.status_code == 403, (role, denied.text)

    allowed = await client.request(**request, headers=cast.by_role[route.minimum].headers)
    assert 200 <= allowed.status_code < 300, allowed.text


ABOVE = [(route, role) for route in MATRIX for role in ROLES[ROLES.index(route.minimum) + 1 :]]


@pytest.fixture(scope="module")
async def reading_cast(client: httpx.AsyncClient, owner_engine: AsyncEngine) -> Cast:
    """One cast for every GET: reads change nothing."""
    return await _cast(People(client), owner_engine)


@pytest.mark.parametrize(
    ("route", "role"), ABOVE, ids=[f"{r.method} {r.path} as {role}" for r, role in ABOVE]
)
async def test_every_role_above_the_minimum_is_allowed_too(
    client: httpx.AsyncClient,
    people: People,
    owner_engine: AsyncEngine,
    reading_cast: Cast,
    route: Route,
    role: str,
) -> None:
    """The role order of API.md holds on every route: what a role may do, every
    higher role may do too."""
    cast = reading_cast if route.method == "GET" else await _cast(people, owner_engine)
    allowed = await client.request(**_request(route, cast), headers=cast.by_role[role].headers)
    assert 200 <= allowed.status_code < 300, (role, allowed.text)


async def test_a_member_of_a_cannot_reach_b_through_a_members_path(
    client: httpx.AsyncClient, people: People, owner_engine: AsyncEngine
) -> None:
    """A's owner names B's workspace with a user id from A: still 404."""
    cast_a, cast_b = await _cast(people, owner_engine), await _cast(people, owner_engine)
    owner_a = cast_a.by_role["owner"]
    url = f"/v1/workspaces/{cast_b.workspace}/members/{cast_a.target.id}"
    for method, body in (("PATCH", {"role": "admin"}), ("DELETE", None)):
        response = await client.request(method, url, json=body, headers=owner_a.headers)
        assert response.status_code == 404
    mine_in_theirs = f"/v1/workspaces/{cast_b.workspace}/members"
    added = await client.post(
        mine_in_theirs, json={"user_id": str(owner_a.id), "role": "owner"}, headers=owner_a.headers
    )
    assert added.status_code == 404
