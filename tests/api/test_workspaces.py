"""Workspaces and members over HTTP, against real Postgres and Redis."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import People


async def test_create_read_rename_delete(client: httpx.AsyncClient, people: People) -> None:
    owner = await people.new()
    created = await client.post("/v1/workspaces", json={"name": "  Acme  "}, headers=owner.headers)
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "Acme"
    assert body["role"] == "owner"
    assert body["created_by"] == str(owner.id)
    assert uuid.UUID(body["id"]).version == 7
    url = f"/v1/workspaces/{body['id']}"

    assert (await client.get(url, headers=owner.headers)).json()["name"] == "Acme"
    renamed = await client.patch(url, json={"name": "Acme 2"}, headers=owner.headers)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Acme 2"
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert (await client.get(url, headers=owner.headers)).status_code == 404


async def test_me_lists_memberships(client: httpx.AsyncClient, people: People) -> None:
    owner = await people.new()
    first = await people.workspace(owner, "One")
    second = await people.workspace(owner, "Two")
    me = (await client.get("/v1/me", headers=owner.headers)).json()
    assert me["id"] == str(owner.id)
    assert me["email"].endswith("@example.test")
    assert {(m["id"], m["role"]) for m in me["memberships"]} == {
        (str(first), "owner"),
        (str(second), "owner"),
    }


async def test_workspace_list_pages_with_a_cursor(
    client: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    created = {str(await people.workspace(owner, f"W{i}")) for i in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/workspaces", params=params, headers=owner.headers)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(created)


async def test_members_add_change_remove(client: httpx.AsyncClient, people: People) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    member = await people.join(workspace, owner, "member")
    members_url = f"/v1/workspaces/{workspace}/members"

    listed = (await client.get(members_url, headers=member.headers)).json()["items"]
    assert {(m["user_id"], m["role"]) for m in listed} == {
        (str(owner.id), "owner"),
        (str(member.id), "member"),
    }
    changed = await client.patch(
        f"{members_url}/{member.id}", json={"role": "admin"}, headers=owner.headers
    )
    assert changed.status_code == 200
    assert changed.json()["role"] == "admin"
    assert (
        await client.delete(f"{members_url}/{member.id}", headers=owner.headers)
    ).status_code == 204
    assert (await client.get(members_url, headers=member.headers)).status_code == 404


async def test_adding_twice_conflicts_and_unknown_users_are_not_found(
    client: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    member = await people.join(workspace, owner, "viewer")
    url = f"/v1/workspaces/{workspace}/members"
    again = await client.post(
        url, json={"user_id": str(member.id), "role": "member"}, headers=owner.headers
    )
    assert again.status_code == 409
    stranger = await client.post(
        url, json={"user_id": str(uuid.uuid4()), "role": "member"}, headers=owner.headers
    )
    assert stranger.status_code == 404


async def test_last_owner_cannot_leave_or_be_demoted(
    client: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    url = f"/v1/workspaces/{workspace}/members/{owner.id}"
    demoted = await client.patch(url, json={"role": "admin"}, headers=owner.headers)
    assert demoted.status_code == 409
    assert demoted.headers["content-type"] == "application/problem+json"
    assert (await client.delete(url, headers=owner.headers)).status_code == 409
    second = await people.join(workspace, owner, "owner")
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    me = (await client.get(f"/v1/workspaces/{workspace}", headers=second.headers)).json()
    assert me["role"] == "owner"


async def test_admins_cannot_touch_owners(client: httpx.AsyncClient, people: People) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    admin = await people.join(workspace, owner, "admin")
    viewer = await people.join(workspace, owner, "viewer")
    url = f"/v1/workspaces/{workspace}/members"
    attempts = [
        client.patch(f"{url}/{owner.id}", json={"role": "member"}, headers=admin.headers),
        client.delete(f"{url}/{owner.id}", headers=admin.headers),
        client.patch(f"{url}/{viewer.id}", json={"role": "owner"}, headers=admin.headers),
    ]
    for attempt in attempts:
        assert (await attempt).status_code == 403
    promoted = await client.patch(
        f"{url}/{viewer.id}", json={"role": "member"}, headers=admin.headers
    )
    assert promoted.status_code == 200


async def test_anyone_may_leave(client: httpx.AsyncClient, people: People) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    viewer = await people.join(workspace, owner, "viewer")
    left = await client.delete(
        f"/v1/workspaces/{workspace}/members/{viewer.id}", headers=viewer.headers
    )
    assert left.status_code == 204
    assert (
        await client.get(f"/v1/workspaces/{workspace}", headers=viewer.headers)
    ).status_code == 404
