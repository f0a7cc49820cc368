"""Replaying a dead letter: a fresh budget of attempts, a stream that goes on
after its first ending, and replays only where the task's own state allows
(its last attempt's job, its own tenant context, a job that had finished)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.task_states import PgTaskStates
from adapters.redis.dead_letters import BullMQDeadLetters
from adapters.redis.queue import BullMQJobQueue
from domain.entities import Dispatch, TaskKind, TaskRef
from entrypoints.devstack.services import Services
from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.integration.test_tasks import _start, _task, _worker_settings, running_worker, wait_until
from tests.live import live, messages
from tests.security.test_tenant_matrix import fail_for_good


def _status(
    client: httpx.AsyncClient, person: Person, workspace: uuid.UUID, task_id: str, status: str
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await _task(client, person, workspace, task_id))["status"] == status

    return check


async def _replay(
    client: httpx.AsyncClient, owner: Person, workspace: uuid.UUID, task: str
) -> None:
    answer = await client.post(
        f"/v1/workspaces/{workspace}/dead-letters/{task}/replay", headers=owner.headers
    )
    assert answer.status_code == 202, answer.text


async def test_a_replay_grants_a_fresh_budget_and_its_stream_goes_on(
    settings: Settings, people: People, services: Services
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    failing = _worker_settings(settings, sim_fail_rate=1.0)
    working = _worker_settings(settings, queue_prefix=failing.queue_prefix)
    body = {"kind": "summarize", "input": {"text": f"twice {uuid.uuid4()}"}, "max_attempts": 2}
    async with live(failing) as http:
        task = (await _start(http, owner, workspace, body)).json()["id"]
        async with running_worker(failing):
            await wait_until(_status(http, owner, workspace, task, "failed"), timeout_s=30)
            first_ending = await _newest_id(http, owner, workspace, task)
            await _replay(http, owner, workspace, task)
            await wait_until(_status(http, owner, workspace, task, "failed"), timeout_s=30)
        # Two more attempts (3 and 4), not one: the budget started again.
        assert (await _task(http, owner, workspace, task))["attempts"] == 4
        # The replay's first attempt took the dead letter of attempt 2 away.
        assert await _dead_letter_ids(services, failing.queue_prefix, task) == [f"{task}.4"]
        await _replay(http, owner, workspace, task)
        async with running_worker(working):
            await wait_until(_status(http, owner, workspace, task, "succeeded"))
        assert await _dead_letter_ids(services, failing.queue_prefix, task) == []
        path = f"/v1/workspaces/{workspace}/tasks/{task}/events"
        kinds = await _kinds(http, path, owner.headers)
        resumed = await _kinds(http, path, {**owner.headers, "Last-Event-ID": first_ending})
    assert kinds.count("task.failed") == 2
    assert kinds.count("task.replayed") == 2
    assert kinds[-1] == "task.succeeded", "the stream ends at the last ending only"
    assert resumed[0] == "task.replayed"
    assert resumed[-1] == "task.succeeded"


async def _dead_letter_ids(services: Services, prefix: str, task: str) -> list[str]:
    """The task's dead letters in the queue (other tests' tasks may run there too)."""
    dead_letters = BullMQDeadLetters(services.redis_url, prefix)
    try:
        found = await dead_letters.newest(1000)
    finally:
        await dead_letters.close()
    return [letter.job_id for letter in found if letter.task_id == task]


async def _newest_id(
    http: httpx.AsyncClient, owner: Person, workspace: uuid.UUID, task: str
) -> str:
    ids = []
    async with http.stream(
        "GET", f"/v1/workspaces/{workspace}/tasks/{task}/events", headers=owner.headers
    ) as response:
        async for message in messages(response):
            if message.event is not None:
                ids.append(message.id)
    assert ids[-1] is not None
    return ids[-1]


async def _kinds(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> list[str]:
    """Every event of a stream until the server ends it."""
    kinds: list[str] = []

    async def read() -> None:
        async with http.stream("GET", path, headers=headers) as response:
            assert response.status_code == 200
            async for message in messages(response):
                if message.event is not None:
                    kinds.append(message.event)

    await asyncio.wait_for(read(), 30)
    return kinds


async def test_only_the_last_attempts_job_of_a_failed_task_replays_it_in_its_own_tenant(
    client: httpx.AsyncClient, people: People, engine: AsyncEngine, owner_engine: AsyncEngine
) -> None:
    """A retried job replays its task only with the task's own workspace,
    creator and last attempt: forged or stale references change nothing."""
    owner_a, owner_b = await people.new(), await people.new()
    workspace_a, workspace_b = await people.workspace(owner_a), await people.workspace(owner_b)
    colleague = await people.join(workspace_a, owner_a, "member")
    task = (await _start(client, owner_a, workspace_a)).json()["id"]
    await fail_for_good(owner_engine, task)
    states = PgTaskStates(engine)
    task_id = uuid.UUID(task)
    for forged, attempt in (
        (TaskRef(workspace_b, task_id, owner_b.id), 1),
        (TaskRef(workspace_b, task_id, owner_a.id), 1),
        (TaskRef(workspace_a, task_id, owner_b.id), 1),
        (TaskRef(workspace_a, task_id, colleague.id), 1),
        (TaskRef(workspace_a, task_id, owner_a.id), 0),
        (TaskRef(workspace_a, task_id, owner_a.id), 2),
        (TaskRef(workspace_a, uuid.uuid4(), owner_a.id), 1),
    ):
        assert await states.replay(forged, attempt) is None, (forged, attempt)
        assert (await _task(client, owner_a, workspace_a, task))["status"] == "failed"
    replayed = await states.replay(TaskRef(workspace_a, task_id, owner_a.id), 1)
    assert replayed is not None
    assert (replayed.status.value, replayed.budget_from, replayed.error) == ("queued", 1, None)
    assert await states.replay(TaskRef(workspace_a, task_id, owner_a.id), 1) is None


@pytest.mark.parametrize("redelivered", [1, 2])
async def test_a_fresh_delivery_of_a_failed_tasks_job_does_not_replay_it(
    client: httpx.AsyncClient,
    people: People,
    settings: Settings,
    services: Services,
    owner_engine: AsyncEngine,
    redelivered: int,
) -> None:
    """A job that never finished (a redelivery after a crash between the
    task's failure and its job's) is no retry: the task stays failed."""
    owner = await people.new()
    workspace = await people.workspace(owner)
    task = (await _start(client, owner, workspace)).json()["id"]
    canary = (
        await _start(client, owner, workspace, {"kind": "summarize", "input": {"text": "canary"}})
    ).json()["id"]
    await fail_for_good(owner_engine, task)
    worker = _worker_settings(settings)
    queue = BullMQJobQueue(services.redis_url, worker.queue_prefix)
    ref = TaskRef(workspace, uuid.UUID(task), owner.id)
    try:
        await queue.enqueue(Dispatch(ref, redelivered, 0, 0, TaskKind.SUMMARIZE))
        async with running_worker(worker):
            await wait_until(_status(client, owner, workspace, canary, "succeeded"))

            async def drained() -> bool:
                # The canary's row commits before its job completes: wait for both jobs.
                counts = await queue.counts()
                return counts["waiting"] == counts["active"] == counts["delayed"] == 0

            await wait_until(drained, timeout_s=10)
    finally:
        await queue.close()
    assert (await _task(client, owner, workspace, task))["status"] == "failed"


async def test_a_lost_attempt_of_a_replayed_task_counts_against_its_fresh_budget(
    client: httpx.AsyncClient, people: People, owner_engine: AsyncEngine
) -> None:
    """recover_tasks fails a lost attempt only when the current budget is spent."""
    owner = await people.new()
    workspace = await people.workspace(owner)
    body = {"kind": "summarize", "input": {"text": "lost"}, "max_attempts": 2}
    ids = [(await _start(client, owner, workspace, body)).json()["id"] for _ in range(2)]
    async with owner_engine.begin() as conn:
        # Both replayed after attempt 2; one lost attempt 3 (budget: 1 of 2
        # spent), the other attempt 4 (2 of 2).
        for task, attempts in zip(ids, (3, 4), strict=True):
            await conn.execute(
                sa.text(
                    "update tasks set status = 'running', attempts = :n, budget_from = 2,"
                    " lease_expires_at = now() - interval '1 minute' where id = :t"
                ),
                {"n": attempts, "t": task},
            )
        await conn.execute(sa.text("select keel_private.recover_tasks(interval '1 hour')"))
    statuses = [(await _task(client, owner, workspace, task))["status"] for task in ids]
    assert statuses == ["queued", "failed"]
