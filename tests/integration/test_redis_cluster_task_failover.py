"""A Redis Cluster master dies (SIGKILL) while tasks run and their streams are
open (the master of the workspace's event streams, or of the queue): the
replica takes over, the API and the worker find the new master by
themselves, every task still ends exactly once, and a stream resumed with
Last-Event-ID misses nothing the cluster retained (issue 15, part 3).

Slow (a cluster of its own, and a failover): `pytest -m slow`.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import msgspec
import pytest

from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.integration.test_tasks import SUMMARY, running_worker
from tests.live import Message, live, messages
from tests.redis_cluster import RedisClusterProcesses

pytestmark = pytest.mark.slow

TASKS = 12
TERMINAL = {"task.succeeded", "task.failed", "task.cancelled"}
GIVE_UP_S = 120.0


async def _read(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> list[Message]:
    """What one connection of a stream delivers, up to its terminal event."""
    seen: list[Message] = []
    async with http.stream("GET", path, headers=headers) as response:
        if response.status_code != 200:
            assert response.status_code == 503, response.status_code
            assert int(response.headers["retry-after"]) > 0
            return seen
        async for message in messages(response):
            if message.event:
                seen.append(message)
            if message.event in TERMINAL:
                break
    return seen


async def _follow(http: httpx.AsyncClient, path: str, owner: Person) -> list[Message]:
    """A client that resumes with Last-Event-ID whenever its stream is cut."""
    pieces: list[Message] = []
    deadline = time.monotonic() + GIVE_UP_S
    while not pieces or pieces[-1].event not in TERMINAL:
        assert time.monotonic() < deadline, f"{path} did not end: {[m.event for m in pieces]}"
        headers = dict(owner.headers)
        if pieces:
            headers["Last-Event-ID"] = str(pieces[-1].id)
        try:
            pieces += await _read(http, path, headers)
        except httpx.HTTPError:
            await asyncio.sleep(0.2)
    return pieces


@pytest.mark.parametrize("master_of", ["events", "queue"])
async def test_tasks_end_once_and_resumed_streams_miss_nothing_across_a_failover(
    own_cluster: RedisClusterProcesses, settings: Settings, master_of: str
) -> None:
    queue = "{failover-" + uuid.uuid4().hex[:8] + "}"
    clustered = msgspec.structs.replace(
        settings,
        redis_url=own_cluster.url,
        redis_cluster=True,
        queue_prefix=queue,
        sim_token_delay_ms=40,
        task_redispatch_s=2,
        task_lease_s=5,
    )
    async with live(clustered) as http:
        people = People(http)
        owner = await people.new()
        workspace = await people.workspace(owner)
        base = f"/v1/workspaces/{workspace}"
        ids = []
        for _ in range(TASKS):
            created = await http.post(f"{base}/tasks", json=SUMMARY, headers=owner.headers)
            assert created.status_code == 202, created.text
            ids.append(created.json()["id"])
        async with running_worker(clustered, concurrency=4):
            follows = [
                asyncio.create_task(_follow(http, f"{base}/tasks/{task}/events", owner))
                for task in ids
            ]
            # The workspace's streams, or the whole queue (one hash tag).
            stream = f"keel:{{ws:{workspace}}}:events" if master_of == "events" else queue
            await asyncio.sleep(1.0)  # some tasks running, some queued
            listed = await http.get(f"{base}/tasks", headers=owner.headers)
            before = [task["status"] for task in listed.json()["items"]]
            assert "queued" in before or "running" in before, before
            dead = own_cluster.master_of(stream)
            own_cluster.kill(dead)

            deadline = time.monotonic() + GIVE_UP_S
            while not await asyncio.to_thread(own_cluster.promoted, stream, dead):
                assert time.monotonic() < deadline, "no replica promoted"
                await asyncio.sleep(0.2)
            followed = await asyncio.wait_for(asyncio.gather(*follows), GIVE_UP_S)
        for task, pieces in zip(ids, followed, strict=True):
            path = f"{base}/tasks/{task}/events"
            terminal = [m for m in pieces if m.event in TERMINAL]
            assert len(terminal) == 1, f"{task} ended {len(terminal)} times"
            read = await http.get(f"{base}/tasks/{task}", headers=owner.headers)
            assert read.json()["status"] == str(terminal[0].event).removeprefix("task.")
            # The stream read again from its start: what the cluster retained.
            retained = await _read(http, path, owner.headers)
            got = {m.id for m in pieces}
            missing = [m.event for m in retained if m.id not in got]
            assert not missing, f"{task}: resumed stream missed {missing}"
            assert len(got) == len(pieces), f"{task}: an event came twice"
