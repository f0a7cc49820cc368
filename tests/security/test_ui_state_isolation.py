"""UI state is per user and per workspace: nobody reads, lists, overwrites or
deletes another user's entries, whatever key they guess, and a key that could
break out of its Redis key pattern is refused before Redis is touched."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import People, Person

KEY = "draft:doc-1"
SECRET = {"draft": "A's unpublished words"}


@dataclass
class Scene:
    alice: Person
    workspace: uuid.UUID
    teammate: Person  # a member of the same workspace
    stranger: Person  # an owner of another workspace

    def url(self, workspace: uuid.UUID | None = None, key: str | None = KEY) -> str:
        base = f"/v1/workspaces/{workspace or self.workspace}/ui-state"
        return base if key is None else f"{base}/{key}"


async def _scene(people: People) -> Scene:
    alice = await people.new()
    workspace = await people.workspace(alice)
    teammate = await people.join(workspace, alice, "admin")
    stranger = await people.new()
    await people.workspace(stranger, "theirs")
    scene = Scene(alice, workspace, teammate, stranger)
    put = await people.client.put(scene.url(), json=SECRET, headers=alice.headers)
    assert put.status_code == 200, put.text
    return scene


async def _alice_still_has_her_state(client: httpx.AsyncClient, scene: Scene) -> None:
    read = await client.get(scene.url(), headers=scene.alice.headers)
    assert (read.status_code, read.json()["value"]) == (200, SECRET)


async def test_a_stranger_reaches_nothing_in_alices_workspace(
    client: httpx.AsyncClient, people: People
) -> None:
    scene = await _scene(people)
    headers = scene.stranger.headers
    for method, url in (
        ("GET", scene.url()),
        ("GET", scene.url(key=None)),
        ("PUT", scene.url()),
        ("DELETE", scene.url()),
        ("PUT", scene.url(key="brand-new")),
    ):
        response = await client.request(method, url, json={"stolen": True}, headers=headers)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["detail"] == "workspace not found"
    await _alice_still_has_her_state(client, scene)


async def test_a_teammate_sees_only_their_own_state(
    client: httpx.AsyncClient, people: People
) -> None:
    scene = await _scene(people)
    headers = scene.teammate.headers
    assert (await client.get(scene.url(), headers=headers)).status_code == 404
    assert (await client.delete(scene.url(), headers=headers)).status_code == 404
    assert (await client.get(scene.url(key=None), headers=headers)).json()["items"] == []

    # Writing the same key makes the teammate's own entry; Alice's stays hers.
    assert (await client.put(scene.url(), json="mine", headers=headers)).status_code == 200
    assert (await client.get(scene.url(), headers=headers)).json()["value"] == "mine"
    await _alice_still_has_her_state(client, scene)
    assert (await client.delete(scene.url(), headers=headers)).status_code == 204
    await _alice_still_has_her_state(client, scene)
    alices = (await client.get(scene.url(key=None), headers=scene.alice.headers)).json()
    assert [item["key"] for item in alices["items"]] == [KEY]


async def test_state_does_not_follow_a_user_into_another_workspace(
    client: httpx.AsyncClient, people: People
) -> None:
    scene = await _scene(people)
    other = await people.workspace(scene.alice, "second")
    headers = scene.alice.headers
    assert (await client.get(scene.url(other), headers=headers)).status_code == 404
    assert (await client.get(scene.url(other, None), headers=headers)).json()["items"] == []
    assert (await client.delete(scene.url(other), headers=headers)).status_code == 404
    await _alice_still_has_her_state(client, scene)


INJECTIONS = [
    "*",
    "a*",
    "?",
    "[a-z]",
    "{ws}",
    "}",
    "{",
    "a b",
    " key",
    "key\n",
    "a\nb",
    "a\r\nSET x 1",
    "a\x00b",
    "%00",
    "a\tb",
    "x" * 129,
    "é",
    "ключ",
    "鍵",
    "emoji-🙂",
    "a\\b",
    "a'b",
    'a"b',
    "a;b",
    "a,b",
    "a@b",
    "a=b",
]


@pytest.mark.parametrize("key", INJECTIONS, ids=repr)
async def test_injection_keys_are_400_and_create_nothing(
    client: httpx.AsyncClient, people: People, redis: Redis, key: str
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    base = f"/v1/workspaces/{workspace}/ui-state"
    before = set(await redis.keys("*"))
    for method in ("PUT", "GET", "DELETE"):
        response = await client.request(
            method, f"{base}/{quote(key, safe='')}", json={"x": 1}, headers=owner.headers
        )
        assert response.status_code == 400, (method, key, response.text)
        assert response.json()["status"] == 400
    appeared = set(await redis.keys("*")) - before
    # Task queues ({test-…}) belong to other tests that may share this Redis.
    assert [n for n in appeared if b":members" not in n and not n.startswith(b"{test-")] == []
    assert (await client.get(base, headers=owner.headers)).json()["items"] == []


async def test_the_longest_key_is_accepted_and_a_slash_is_no_key(
    client: httpx.AsyncClient, people: People, redis: Redis
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    base = f"/v1/workspaces/{workspace}/ui-state"
    longest = "k" * 128
    assert (await client.put(f"{base}/{longest}", json=1, headers=owner.headers)).is_success
    for slashed in ("a%2Fb", "a/b"):
        response = await client.put(f"{base}/{slashed}", json=1, headers=owner.headers)
        assert response.status_code in (400, 404, 405), (slashed, response.text)
    listed = (await client.get(base, headers=owner.headers)).json()["items"]
    assert [item["key"] for item in listed] == [longest]
    ours = {name async for name in redis.scan_iter(match=f"keel:{{u:{owner.id}}}:ui*")}
    assert ours == {
        f"keel:{{u:{owner.id}}}:ui:{workspace}:{longest}".encode(),
        f"keel:{{u:{owner.id}}}:ui-index:{workspace}".encode(),
        f"keel:{{u:{owner.id}}}:ui-ledger".encode(),
        f"keel:{{u:{owner.id}}}:ui-bytes".encode(),
    }
