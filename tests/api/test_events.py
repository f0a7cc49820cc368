"""Live task events over SSE, through a real server and a real SSE client."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from adapters.redis.events import stream_key
from domain.events import StreamRef
from entrypoints.http.app import create_app, drain_event_streams
from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.integration.test_tasks import _worker_settings, running_worker
from tests.live import Message, live, messages, serving

TERMINAL = {"task.succeeded", "task.failed", "task.cancelled"}


def _generate() -> dict[str, Any]:
    return {"kind": "generate", "input": {"prompt": f"launch note {uuid.uuid4()}"}}


async def _read(
    http: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    limit: int | None = None,
) -> list[Message]:
    """Messages of a stream until its end, a terminal event, or `limit` events."""
    seen: list[Message] = []
    async with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for message in messages(response):
            if message.event is None:
                continue
            seen.append(message)
            if message.event in TERMINAL or (limit is not None and len(seen) >= limit):
                break
    return seen


def _position(event_id: str | None) -> tuple[int, int]:
    assert event_id is not None, "every event carries an id"
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


async def _task(http: httpx.AsyncClient, person: Person, workspace: uuid.UUID) -> str:
    response = await http.post(
        f"/v1/workspaces/{workspace}/tasks", json=_generate(), headers=person.headers
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_a_task_stream_carries_the_whole_sequence_in_order(
    settings: Settings, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    worker = _worker_settings(settings, sim_token_delay_ms=30)
    async with live(worker) as http:
        task_id = await _task(http, owner, workspace)
        async with running_worker(worker):
            seen = await _read(
                http, f"/v1/workspaces/{workspace}/tasks/{task_id}/events", owner.headers
            )
    kinds = [m.event for m in seen]
    assert kinds[:2] == ["task.queued", "task.started"], kinds
    assert kinds[-1] == "task.succeeded", kinds
    assert set(kinds[2:-1]) == {"task.progress", "task.token"}, kinds
    positions = [_position(m.id) for m in seen]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    for message in seen:
        body = message.json
        assert body["task_id"] == task_id
        assert body["workspace_id"] == str(workspace)
        assert body["type"] == message.event
    text = "".join(m.json["data"]["text"] for m in seen if m.event == "task.token")
    assert text == seen[-1].json["data"]["result"]["text"]


async def test_resuming_at_random_points_loses_and_repeats_nothing(
    settings: Settings, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    worker = _worker_settings(settings, sim_token_delay_ms=15)
    rng = random.Random(11)
    async with live(worker) as http:
        task_ids = [await _task(http, owner, workspace) for _ in range(3)]
        async with running_worker(worker):
            for task_id in task_ids:
                path = f"/v1/workspaces/{workspace}/tasks/{task_id}/events"
                pieces: list[Message] = []
                while not pieces or pieces[-1].event not in TERMINAL:
                    headers = dict(owner.headers)
                    if pieces:
                        headers["Last-Event-ID"] = str(pieces[-1].id)
                    pieces += await _read(http, path, headers, limit=rng.randint(1, 4))
                whole = await _read(http, path, owner.headers)
                assert [(m.id, m.event, m.data) for m in pieces] == [
                    (m.id, m.event, m.data) for m in whole
                ]


async def test_workspace_stream_sees_every_task(settings: Settings, people: People) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    worker = _worker_settings(settings, sim_token_delay_ms=1)
    async with (
        live(worker) as http,
        http.stream("GET", f"/v1/workspaces/{workspace}/events", headers=owner.headers) as response,
    ):
        assert response.status_code == 200
        ids = {await _task(http, owner, workspace) for _ in range(3)}
        ended: set[str] = set()
        async with running_worker(worker):
            async for message in messages(response):
                if message.event in TERMINAL:
                    ended.add(message.json["task_id"])
                if ended == ids:
                    break
    assert ended == ids


async def test_an_idle_stream_gets_heartbeats(settings: Settings, people: People) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    async with (
        live(settings, sse_heartbeat_s=0.2) as http,
        http.stream("GET", f"/v1/workspaces/{workspace}/events", headers=owner.headers) as r,
    ):
        beats = 0
        async for message in messages(r):
            beats += "keep-alive" in message.comments
            if beats == 3:
                break
    assert beats == 3


@dataclass
class Finished:
    """A task run to its end, its whole stream, and a live server to read it again."""

    http: httpx.AsyncClient
    owner: Person
    key: str
    path: str
    whole: list[Message]


@asynccontextmanager
async def _finished(settings: Settings, people: People) -> AsyncIterator[Finished]:
    owner = await people.new()
    workspace = await people.workspace(owner)
    worker = _worker_settings(settings, sim_token_delay_ms=1)
    async with live(worker) as http:
        task_id = await _task(http, owner, workspace)
        path = f"/v1/workspaces/{workspace}/tasks/{task_id}/events"
        async with running_worker(worker):
            whole = await _read(http, path, owner.headers)
        key = stream_key(StreamRef(workspace, uuid.UUID(task_id)))
        yield Finished(http, owner, key, path, whole)


async def test_bad_last_event_id_is_400_and_an_old_one_starts_with_a_reset(
    settings: Settings, people: People, redis: Redis
) -> None:
    async with _finished(settings, people) as done:
        headers = done.owner.headers
        bad = await done.http.get(done.path, headers={**headers, "Last-Event-ID": "0-0 OR 1=1"})
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
        await redis.xtrim(done.key, maxlen=2, approximate=False)
        first = str(done.whole[0].id)
        resumed = await _read(done.http, done.path, {**headers, "Last-Event-ID": first})
    assert resumed[0].event == "stream.reset"
    assert resumed[0].json["data"]["last_event_id"] == first
    assert [m.id for m in resumed[1:]] == [m.id for m in done.whole[-2:]]


async def test_a_finished_task_whose_events_were_lost_still_ends(
    settings: Settings, people: People, redis: Redis
) -> None:
    async with _finished(settings, people) as done:
        await redis.delete(done.key, f"{done.key}:ended")  # Redis restarted empty
        again = await asyncio.wait_for(_read(done.http, done.path, done.owner.headers), 10)
    assert [m.event for m in again] == ["task.succeeded"]
    assert again[0].json["data"]["result"] == done.whole[-1].json["data"]["result"]


async def test_two_api_processes_both_see_a_workers_events(
    settings: Settings, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    worker = _worker_settings(settings, sim_token_delay_ms=5)
    async with live(worker) as first, live(worker) as second:
        task_id = await _task(first, owner, workspace)
        path = f"/v1/workspaces/{workspace}/tasks/{task_id}/events"
        async with running_worker(worker):
            one, two = await asyncio.gather(
                _read(first, path, owner.headers), _read(second, path, owner.headers)
            )
    assert [m.id for m in one] == [m.id for m in two]
    assert one[-1].event == "task.succeeded"


async def test_too_many_open_streams_is_429(settings: Settings, people: People) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    path = f"/v1/workspaces/{workspace}/events"
    async with (
        live(settings, sse_streams_per_user=2) as http,
        http.stream("GET", path, headers=owner.headers) as first,
        http.stream("GET", path, headers=owner.headers) as second,
    ):
        assert (first.status_code, second.status_code) == (200, 200)
        third = await http.get(path, headers=owner.headers)
        assert third.status_code == 429
        assert int(third.headers["Retry-After"]) > 0
        assert (third.headers["RateLimit-Limit"], third.headers["RateLimit-Remaining"]) == (
            "2",
            "0",
        )
        assert third.headers["RateLimit-Reset"] == third.headers["Retry-After"]
    # Closed streams gave their slots back.
    async with (
        live(settings, sse_streams_per_user=2) as http,
        http.stream("GET", path, headers=owner.headers) as again,
    ):
        assert again.status_code == 200


async def test_shutdown_closes_streams_with_a_retry_hint(
    settings: Settings, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    app = create_app(settings)
    async with (
        serving(settings, app) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        http.stream("GET", f"/v1/workspaces/{workspace}/events", headers=owner.headers) as r,
    ):
        drain_event_streams(app)
        last = [message async for message in messages(r)][-1]
    assert last.retry is not None
    assert any("shutting down" in comment for comment in last.comments)
