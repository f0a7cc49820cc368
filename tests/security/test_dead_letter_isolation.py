"""Dead letters stay in their workspace: an owner of workspace B can never
list, read or replay a dead letter of workspace A, by any path, id or cursor;
A's members who are not owners are refused (403), outsiders see nothing (404)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import People, Person
from tests.security.test_tenant_matrix import NEW_TASK, fail_for_good


async def _dead_letters(
    people: People, owner_engine: AsyncEngine, workspace: uuid.UUID, owner: Person, count: int
) -> list[str]:
    ids = []
    for index in range(count):
        body = {**NEW_TASK, "input": {"text": f"dead letter {index} of {workspace}"}}
        created = await people.client.post(
            f"/v1/workspaces/{workspace}/tasks", json=body, headers=owner.headers
        )
        assert created.status_code == 202, created.text
        await fail_for_good(owner_engine, created.json()["id"])
        ids.append(created.json()["id"])
    return ids


async def _status(client: httpx.AsyncClient, owner: Person, workspace: uuid.UUID, task: str) -> str:
    response = await client.get(f"/v1/workspaces/{workspace}/tasks/{task}", headers=owner.headers)
    return str(response.json()["status"])


@pytest.mark.parametrize("role_in_a", [None, "viewer", "member", "admin"])
async def test_an_owner_of_b_never_lists_reads_or_replays_a_dead_letter_of_a(
    client: httpx.AsyncClient, people: People, owner_engine: AsyncEngine, role_in_a: str | None
) -> None:
    owner_a = await people.new()
    workspace_a = await people.workspace(owner_a, "A")
    if role_in_a is None:
        owner_b = await people.new()
    else:
        owner_b = await people.join(workspace_a, owner_a, role_in_a)
    workspace_b = await people.workspace(owner_b, "B")
    theirs = await _dead_letters(people, owner_engine, workspace_a, owner_a, 3)
    mine = await _dead_letters(people, owner_engine, workspace_b, owner_b, 2)

    # B's list holds B's dead letters only, on every page, whatever the cursor.
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1} if cursor is None else {"limit": 1, "cursor": cursor}
        page = await client.get(
            f"/v1/workspaces/{workspace_b}/dead-letters", params=params, headers=owner_b.headers
        )
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(mine)
    a_page = await client.get(
        f"/v1/workspaces/{workspace_a}/dead-letters", params={"limit": 1}, headers=owner_a.headers
    )
    a_cursor = a_page.json()["next_cursor"]
    assert a_cursor is not None
    replayed_cursor = await client.get(
        f"/v1/workspaces/{workspace_b}/dead-letters",
        params={"cursor": a_cursor},
        headers=owner_b.headers,
    )
    assert not set(item["id"] for item in replayed_cursor.json()["items"]) & set(theirs)

    # A's dead letters through B's workspace, and through A's own.
    refused_in_a = 404 if role_in_a is None else 403
    for task in theirs:
        for workspace, expected in ((workspace_b, 404), (workspace_a, refused_in_a)):
            base = f"/v1/workspaces/{workspace}/dead-letters"
            for method, url in (
                ("GET", f"{base}/{task}"),
                ("POST", f"{base}/{task}/replay"),
                ("GET", base),
            ):
                answer = await client.request(method, url, headers=owner_b.headers)
                if url == base and workspace == workspace_b:
                    continue  # B's own list, checked above
                assert answer.status_code == expected, (method, url, answer.text)
                assert answer.json()["status"] == expected
                assert task not in answer.text
        assert await _status(client, owner_a, workspace_a, task) == "failed"

    # B's owner replays B's own: that works, and A's stay failed.
    for task in mine:
        replayed = await client.post(
            f"/v1/workspaces/{workspace_b}/dead-letters/{task}/replay", headers=owner_b.headers
        )
        assert (replayed.status_code, replayed.json()["status"]) == (202, "queued")
    for task in theirs:
        assert await _status(client, owner_a, workspace_a, task) == "failed"


async def test_a_dead_letter_replays_once_and_only_while_failed(
    client: httpx.AsyncClient, people: People, owner_engine: AsyncEngine
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    (task,) = await _dead_letters(people, owner_engine, workspace, owner, 1)
    queued = (
        await client.post(f"/v1/workspaces/{workspace}/tasks", json=NEW_TASK, headers=owner.headers)
    ).json()["id"]
    shown = await client.get(
        f"/v1/workspaces/{workspace}/dead-letters/{task}", headers=owner.headers
    )
    assert shown.status_code == 200, shown.text
    assert (shown.json()["task"]["error"], shown.json()["history"]) == ("it broke", [])
    url = f"/v1/workspaces/{workspace}/dead-letters/{task}/replay"
    first = await client.post(url, headers=owner.headers)
    assert first.status_code == 202, first.text
    body = first.json()
    assert (body["status"], body["error"], body["attempts"]) == ("queued", None, 1)
    again = await client.post(url, headers=owner.headers)
    assert again.status_code == 404
    for not_dead in (queued, str(uuid.uuid4()), task):
        answer = await client.get(
            f"/v1/workspaces/{workspace}/dead-letters/{not_dead}", headers=owner.headers
        )
        assert answer.status_code == 404
    bad = await client.get(
        f"/v1/workspaces/{workspace}/dead-letters/not-a-uuid", headers=owner.headers
    )
    assert 400 <= bad.status_code < 500
