"""Races an attacker can start: the same request at once, or one request
against another, across two API processes (two servers on one Postgres and
one Redis, each with its own app and memory, in the test's event loop: the
in-process test client blocks the loop for each request, so requests sent
with it never overlap, and a worker in the loop would stall behind them).

- A member removed on one process is refused on the very next request on
  the other, the cached fast path included (their reads were warm there).
- Concurrent PATCHes with one `If-Match`: exactly one wins, the rest 412.
- Cancel against finish: a task cancelled at any moment of its run ends
  once, cancelled or succeeded, with one terminal event that says which.
- One Idempotency-Key: concurrent requests make one task; another member
  reusing it gets that task or a 409, never a second one; an outsider's
  request with it is a 404 there and another task in their own workspace.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.redis.client import RedisClient
from adapters.redis.events.wire import read_after, stream_key
from domain.events import StreamRef
from entrypoints.settings import Settings
from tests.conftest import People
from tests.integration.test_tasks import _worker_settings, running_worker, wait_until
from tests.live import live

DOCUMENT = {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}, "tags": []}
TASK = {"kind": "summarize", "input": {"text": "one two three four five six seven eight"}}
FINAL = {"succeeded", "cancelled", "failed"}


@pytest.fixture(scope="module")
async def servers(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with live(settings) as one, live(settings) as two:
        yield one, two


@pytest.fixture
def client(servers: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> httpx.AsyncClient:
    return servers[0]


@pytest.fixture
def other(servers: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> httpx.AsyncClient:
    return servers[1]


@pytest.fixture
def people(client: httpx.AsyncClient) -> People:
    return People(client)


async def test_a_removed_member_is_refused_next_on_every_process_and_the_fast_path(
    client: httpx.AsyncClient, other: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    document = await people.document(workspace, owner, DOCUMENT)
    base = f"/v1/workspaces/{workspace}"
    reads = [f"{base}/foundation/{document}", f"{base}/foundation", f"{base}/tasks", base]
    for _ in range(3):
        member = await people.join(workspace, owner, "member")
        for app in (client, other):
            for _ in range(2):  # the second read of the document is the fast path's
                for url in reads:
                    assert (await app.get(url, headers=member.headers)).status_code == 200
        removed = await client.delete(f"{base}/members/{member.id}", headers=owner.headers)
        assert removed.status_code == 204
        for app in (other, client):
            for url in reads:
                after = await app.get(url, headers=member.headers)
                assert after.status_code == 404, (url, after.text)


async def test_concurrent_patches_with_one_if_match_exactly_one_wins(
    client: httpx.AsyncClient, other: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    url = (
        f"/v1/workspaces/{workspace}/foundation/{await people.document(workspace, owner, DOCUMENT)}"
    )
    for version in range(1, 4):
        headers = {**owner.headers, "If-Match": f'"{version}"'}
        answers = await asyncio.gather(
            *(
                (client, other)[i % 2].patch(url, json={"title": f"t{i}"}, headers=headers)
                for i in range(8)
            )
        )
        assert sorted(a.status_code for a in answers) == [200] + [412] * 7
        winner = next(a for a in answers if a.status_code == 200).json()
        now = (await other.get(url, headers=owner.headers)).json()
        assert (now["version"], now["title"]) == (version + 1, winner["title"])


async def _terminal_events(redis: RedisClient, workspace: str, task: str) -> list[str]:
    key = stream_key(StreamRef(uuid.UUID(workspace), uuid.UUID(task)))
    return [
        stored.event.type.value
        for stored in await read_after(redis, key, "0-0")
        if stored.event.type.terminal
    ]


async def test_cancel_against_finish_ends_each_task_once(
    client: httpx.AsyncClient, people: People, settings: Settings, redis: RedisClient
) -> None:
    owner = await people.new()
    workspace = str(await people.workspace(owner))
    base = f"/v1/workspaces/{workspace}/tasks"

    async def start_and_cancel(delay_s: float) -> str:
        task = (await client.post(base, json=TASK, headers=owner.headers)).json()["id"]
        await asyncio.sleep(delay_s)
        cancelled = await client.post(f"{base}/{task}/cancel", headers=owner.headers)
        assert cancelled.status_code == 202, cancelled.text
        return str(task)

    async def all_final(ids: list[str]) -> bool:
        answers = [await client.get(f"{base}/{i}", headers=owner.headers) for i in ids]
        return all(a.json()["status"] in FINAL for a in answers)

    async with running_worker(_worker_settings(settings, sim_token_delay_ms=10)):
        ids = await asyncio.gather(*(start_and_cancel(0.03 * i) for i in range(12)))
        await wait_until(lambda: all_final(ids))
    ends: dict[str, int] = {}
    for task_id in ids:
        task = (await client.get(f"{base}/{task_id}", headers=owner.headers)).json()
        ends[task["status"]] = ends.get(task["status"], 0) + 1
        assert task["status"] in ("succeeded", "cancelled"), task
        assert (task["result"] is None) == (task["status"] == "cancelled"), task
        events = await _terminal_events(redis, workspace, task_id)
        assert events == [f"task.{task['status']}"], (task_id, events)
    assert ends.get("cancelled", 0) > 0, ends


async def test_one_idempotency_key_at_once_makes_one_task(
    client: httpx.AsyncClient, other: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    base = f"/v1/workspaces/{workspace}/tasks"
    headers = {**owner.headers, "Idempotency-Key": "same-key"}
    answers = await asyncio.gather(
        *((client, other)[i % 2].post(base, json=TASK, headers=headers) for i in range(10))
    )
    assert sorted(a.status_code for a in answers) == [200] * 9 + [202], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    listed = (await client.get(base, headers=owner.headers)).json()["items"]
    assert len(listed) == 1


async def test_one_idempotency_key_across_users_and_workspaces(
    client: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    colleague = await people.join(workspace, owner, "member")
    outsider = await people.new()
    theirs = await people.workspace(outsider, "theirs")
    key = {"Idempotency-Key": "shared-key"}

    def post(ws: uuid.UUID, who: Any, body: dict[str, Any] = TASK) -> Any:
        return client.post(f"/v1/workspaces/{ws}/tasks", json=body, headers={**who.headers, **key})

    first = await post(workspace, owner)
    assert first.status_code == 202
    again = await post(workspace, colleague)
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    other_body = {"kind": "summarize", "input": {"text": "something else"}}
    assert (await post(workspace, colleague, other_body)).status_code == 409
    assert (await post(workspace, outsider)).status_code == 404
    elsewhere = await post(theirs, outsider)
    assert elsewhere.status_code == 202
    assert elsewhere.json()["id"] != first.json()["id"]
    listed = await client.get(f"/v1/workspaces/{workspace}/tasks", headers=owner.headers)
    assert [t["id"] for t in listed.json()["items"]] == [first.json()["id"]]
