"""Tasks end to end: the API, the outbox relay, BullMQ and a worker running in
this process, against real Postgres and Redis."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest
import sqlalchemy as sa
from bullmq import Queue
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clock import SystemClock
from adapters.models.simulated import SimulatedModel
from adapters.postgres.dispatch import PgTaskDispatcher
from adapters.postgres.task_states import PgTaskStates
from adapters.postgres.uow import PgUnitOfWorkFactory
from adapters.redis.queue import QUEUE, queue_connection
from application.run_task import RunnerSettings, RunTask
from domain.attempts import Outcome
from domain.entities import TaskRef
from domain.events import EventType, TaskEvent
from domain.ports import Cache
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from entrypoints.worker import run_worker
from tests.conftest import People, Person
from tests.fakes import RecordedEvents

SUMMARY = {"kind": "summarize", "input": {"text": "Keel runs agents for many workspaces."}}


def _worker_settings(settings: Settings, **changes: Any) -> Settings:
    defaults: dict[str, Any] = {
        "queue_prefix": "{test-" + uuid.uuid4().hex[:12] + "}",
        "sim_token_delay_ms": 1,
        "retry_base_ms": 20,
        "retry_cap_ms": 200,
        "task_redispatch_s": 2,
        "task_lease_s": 5,
    }
    return msgspec.structs.replace(settings, **{**defaults, **changes})


@asynccontextmanager
async def running_worker(settings: Settings, concurrency: int = 8) -> AsyncIterator[None]:
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, concurrency, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _start(
    client: httpx.AsyncClient,
    person: Person,
    workspace: uuid.UUID,
    body: dict[str, Any] = SUMMARY,
    **headers: str,
) -> httpx.Response:
    return await client.post(
        f"/v1/workspaces/{workspace}/tasks", json=body, headers={**person.headers, **headers}
    )


async def _task(
    client: httpx.AsyncClient, person: Person, workspace: uuid.UUID, task_id: str
) -> dict[str, Any]:
    response = await client.get(
        f"/v1/workspaces/{workspace}/tasks/{task_id}", headers=person.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _runner(engine: AsyncEngine, cache: Cache, model: Any, events: RecordedEvents) -> RunTask:
    """RunTask as a worker builds it, with the model and the event sink given."""
    return RunTask(
        PgUnitOfWorkFactory(engine),
        PgTaskStates(engine),
        cache,
        model,
        events,
        RunnerSettings(),
        SystemClock(),
    )


async def _all_final(client, person, workspace, ids) -> bool:
    states = [(await _task(client, person, workspace, i))["status"] for i in ids]
    return all(s in ("succeeded", "failed", "cancelled") for s in states)


@pytest.mark.parametrize("fetching", [True, False], ids=["fetching-worker", "plain-worker"])
async def test_a_generate_task_runs_with_the_foundation_as_context(
    client: httpx.AsyncClient,
    people: People,
    settings: Settings,
    owner_engine: AsyncEngine,
    fetching: bool,
) -> None:
    """End to end, with either worker (KEEL_WORKER_FETCHING)."""
    owner = await people.new()
    workspace = await people.workspace(owner)
    await people.document(
        workspace,
        owner,
        {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}, "tags": []},
    )
    started = await _start(
        client, owner, workspace, {"kind": "generate", "input": {"prompt": "Write a tagline"}}
    )
    assert started.status_code == 202
    assert started.json()["status"] == "queued"
    task_id = started.json()["id"]
    async with running_worker(_worker_settings(settings, worker_fetching=fetching)):
        await wait_until(lambda: _all_final(client, owner, workspace, [task_id]))
    task = await _task(client, owner, workspace, task_id)
    assert (task["status"], task["attempts"], task["progress"]) == ("succeeded", 1, 100)
    assert task["result"]["text"].startswith("Write-")
    assert task["cached"] is False
    async with owner_engine.connect() as conn:
        history = await conn.execute(
            sa.text("select attempt, outcome from task_attempts where task_id = :t order by at"),
            {"t": task_id},
        )
        assert [tuple(row) for row in history] == [(1, "started"), (1, "succeeded")]


async def test_committed_tasks_run_though_nothing_was_enqueued_yet(
    client: httpx.AsyncClient, people: People, settings: Settings, services
) -> None:
    """The crash point between the commit and the enqueue: no worker, no relay
    ran when these committed; they must all run once one starts."""
    owner = await people.new()
    workspace = await people.workspace(owner)
    ids = [
        (
            await _start(
                client, owner, workspace, {"kind": "summarize", "input": {"text": f"text {i}"}}
            )
        ).json()["id"]
        for i in range(10)
    ]
    worker_settings = _worker_settings(settings)
    on = queue_connection(services.redis_url, services.redis_cluster)
    queue = Queue(QUEUE, {"connection": on, "prefix": worker_settings.queue_prefix})
    try:
        assert sum((await queue.getJobCounts()).values()) == 0
    finally:
        await queue.close()
    async with running_worker(worker_settings):
        await wait_until(lambda: _all_final(client, owner, workspace, ids))
    for task_id in ids:
        assert (await _task(client, owner, workspace, task_id))["status"] == "succeeded"


async def test_an_identical_request_is_answered_from_the_ai_result_cache(
    client: httpx.AsyncClient, people: People, settings: Settings
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    async with running_worker(_worker_settings(settings)):
        first = (await _start(client, owner, workspace)).json()["id"]
        await wait_until(lambda: _all_final(client, owner, workspace, [first]))
        second = (await _start(client, owner, workspace)).json()["id"]
        await wait_until(lambda: _all_final(client, owner, workspace, [second]))
    one, two = [await _task(client, owner, workspace, i) for i in (first, second)]
    assert (one["cached"], two["cached"]) == (False, True)
    assert one["result"] == two["result"]


@pytest.mark.slow  # waits out the retry backoff
async def test_transient_failures_retry_within_the_policy_then_dead_letter(
    client: httpx.AsyncClient,
    people: People,
    settings: Settings,
    owner_engine: AsyncEngine,
    services,
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    worker_settings = _worker_settings(settings, sim_fail_rate=0.3)
    ids = [
        (
            await _start(
                client,
                owner,
                workspace,
                {"kind": "summarize", "input": {"text": f"retry {i}"}, "max_attempts": 3},
            )
        ).json()["id"]
        for i in range(30)
    ]
    async with running_worker(worker_settings):
        await wait_until(lambda: _all_final(client, owner, workspace, ids), timeout_s=120)
    tasks = [await _task(client, owner, workspace, i) for i in ids]
    assert all(1 <= t["attempts"] <= 3 for t in tasks)
    failed = [t for t in tasks if t["status"] == "failed"]
    assert all(t["attempts"] == 3 for t in failed)
    assert any(t["attempts"] > 1 for t in tasks), "30% failures must cause some retries"
    async with owner_engine.connect() as conn:
        delays = (
            (
                await conn.execute(
                    sa.text(
                        "select delay_ms from task_attempts where outcome = 'retrying'"
                        " and task_id = any(cast(:ids as uuid[]))"
                    ),
                    {"ids": ids},
                )
            )
            .scalars()
            .all()
        )
    assert delays
    assert all(0 <= d <= worker_settings.retry_cap_ms for d in delays)
    on = queue_connection(services.redis_url, services.redis_cluster)
    queue = Queue(QUEUE, {"connection": on, "prefix": worker_settings.queue_prefix})
    try:
        assert (await queue.getJobCounts("failed"))["failed"] == len(failed)
    finally:
        await queue.close()


async def test_a_cancelled_queued_task_never_runs(
    client: httpx.AsyncClient, people: People, settings: Settings
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    task_id = (await _start(client, owner, workspace)).json()["id"]
    cancelled = await client.post(
        f"/v1/workspaces/{workspace}/tasks/{task_id}/cancel", headers=owner.headers
    )
    assert (cancelled.status_code, cancelled.json()["status"]) == (202, "cancelled")
    canary = (
        await _start(client, owner, workspace, {"kind": "summarize", "input": {"text": "canary"}})
    ).json()["id"]
    async with running_worker(_worker_settings(settings)):
        await wait_until(lambda: _all_final(client, owner, workspace, [canary]))
    task = await _task(client, owner, workspace, task_id)
    assert (task["status"], task["attempts"], task["started_at"]) == ("cancelled", 0, None)


async def test_a_running_task_stops_when_cancelled(
    client: httpx.AsyncClient, people: People, settings: Settings
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    task_id = (await _start(client, owner, workspace)).json()["id"]

    async def running() -> bool:
        return (await _task(client, owner, workspace, task_id))["status"] == "running"

    async with running_worker(_worker_settings(settings, sim_token_delay_ms=200)):
        await wait_until(running)
        await client.post(
            f"/v1/workspaces/{workspace}/tasks/{task_id}/cancel", headers=owner.headers
        )
        await wait_until(lambda: _all_final(client, owner, workspace, [task_id]))
    task = await _task(client, owner, workspace, task_id)
    assert (task["status"], task["result"]) == ("cancelled", None)


async def test_idempotency_keys(client: httpx.AsyncClient, people: People) -> None:
    owner = await people.new()
    workspace, other = await people.workspace(owner), await people.workspace(owner)
    first = await _start(client, owner, workspace, **{"Idempotency-Key": "k-1"})
    again = await _start(client, owner, workspace, **{"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    changed = await _start(
        client,
        owner,
        workspace,
        {"kind": "summarize", "input": {"text": "other"}},
        **{"Idempotency-Key": "k-1"},
    )
    assert changed.status_code == 409
    elsewhere = await _start(client, owner, other, **{"Idempotency-Key": "k-1"})
    assert elsewhere.status_code == 202
    assert elsewhere.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "dance", "input": {}},
        {"kind": "generate", "input": {}},
        {"kind": "generate", "input": {"prompt": "x", "extra": 1}},
        {"kind": "summarize", "input": {"text": ""}},
        {"kind": "summarize", "input": {"text": "x"}, "priority": 11},
        {"kind": "summarize", "input": {"text": "x"}, "max_attempts": 0},
        {"kind": "summarize", "input": {"text": "x"}, "status": "succeeded"},
    ],
)
async def test_invalid_task_requests(
    client: httpx.AsyncClient, people: People, body: dict[str, Any]
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    assert (await _start(client, owner, workspace, body)).status_code == 400


async def test_a_worker_touches_only_the_workspace_of_the_task_it_holds(
    client: httpx.AsyncClient, people: People, engine: AsyncEngine, cache: Cache
) -> None:
    """A forged queue entry naming workspace A and B's task changes nothing."""
    owner_a, owner_b = await people.new(), await people.new()
    workspace_a, workspace_b = await people.workspace(owner_a), await people.workspace(owner_b)
    colleague = await people.join(workspace_b, owner_b, "member")
    task_b = (await _start(client, owner_b, workspace_b)).json()["id"]
    runner = _runner(engine, cache, SimulatedModel(0), RecordedEvents())
    for forged in (
        TaskRef(workspace_a, uuid.UUID(task_b), owner_a.id),
        TaskRef(workspace_b, uuid.UUID(task_b), owner_a.id),
        TaskRef(workspace_b, uuid.UUID(task_b), colleague.id),
    ):
        assert (await runner.execute(forged)).outcome is Outcome.SKIPPED
    task = await _task(client, owner_b, workspace_b, task_b)
    assert (task["status"], task["attempts"]) == ("queued", 0)


async def test_the_attempt_goes_on_while_task_started_is_published_and_events_stay_in_order(
    client: httpx.AsyncClient, people: People, engine: AsyncEngine, cache: Cache
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    task_id = (await _start(client, owner, workspace)).json()["id"]
    streaming = asyncio.Event()

    class SlowStart(RecordedEvents):
        """`task.started` reaches the bus only when the gate opens."""

        def __init__(self) -> None:
            super().__init__()
            self.gate = asyncio.Event()

        async def publish(self, *events: TaskEvent) -> None:
            if events[0].type is EventType.STARTED:
                await self.gate.wait()
            await super().publish(*events)

    class Model:
        name = f"model-{uuid.uuid4()}"

        async def stream(self, system: str, prompt: str) -> AsyncIterator[str]:
            streaming.set()
            yield "an answer"

    events = SlowStart()
    runner = _runner(engine, cache, Model(), events)
    run = asyncio.create_task(runner.execute(TaskRef(workspace, uuid.UUID(task_id), owner.id)))
    await asyncio.wait_for(streaming.wait(), 10)  # the model runs before `started` is out
    await wait_until(lambda: _all_final(client, owner, workspace, [task_id]), timeout_s=10)
    await asyncio.sleep(0.1)
    assert events.events == [], "nothing is published before task.started"
    assert not run.done()
    events.gate.set()
    assert (await asyncio.wait_for(run, 10)).outcome is Outcome.SUCCEEDED
    assert [event.type for event in events.events] == [
        EventType.STARTED,
        EventType.TOKEN,
        EventType.SUCCEEDED,
    ]


async def test_a_started_event_that_fails_to_publish_does_not_hold_back_the_outcome(
    client: httpx.AsyncClient, people: People, engine: AsyncEngine, cache: Cache
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    task_id = (await _start(client, owner, workspace)).json()["id"]

    class BrokenStart(RecordedEvents):
        async def publish(self, *events: TaskEvent) -> None:
            if events[0].type is EventType.STARTED:
                raise RuntimeError("a bug in the bus")
            await super().publish(*events)

    events = BrokenStart()
    runner = _runner(engine, cache, SimulatedModel(0), events)
    ref = TaskRef(workspace, uuid.UUID(task_id), owner.id)
    assert (await runner.execute(ref)).outcome is Outcome.SUCCEEDED
    assert events.events[-1].type is EventType.SUCCEEDED


@pytest.mark.slow  # a load scenario: a flood of tasks
async def test_one_workspace_flooding_the_queue_does_not_starve_another(
    client: httpx.AsyncClient, people: People, settings: Settings, owner_engine: AsyncEngine
) -> None:
    flooder, quiet = await people.new(), await people.new()
    workspace_a, workspace_b = await people.workspace(flooder), await people.workspace(quiet)
    many = [
        (
            await _start(
                client, flooder, workspace_a, {"kind": "summarize", "input": {"text": f"flood {i}"}}
            )
        ).json()["id"]
        for i in range(60)
    ]
    few = [
        (
            await _start(
                client, quiet, workspace_b, {"kind": "summarize", "input": {"text": f"quiet {i}"}}
            )
        ).json()["id"]
        for i in range(3)
    ]
    async with running_worker(
        _worker_settings(settings, sim_token_delay_ms=5, workspace_max_running=2), concurrency=6
    ):
        await wait_until(lambda: _all_final(client, flooder, workspace_a, many), timeout_s=180)
        await wait_until(lambda: _all_final(client, quiet, workspace_b, few))
    async with owner_engine.connect() as conn:
        finished = dict(
            (
                await conn.execute(
                    sa.text(
                        "select id::text, finished_at from tasks"
                        " where id = any(cast(:ids as uuid[]))"
                    ),
                    {"ids": many + few},
                )
            ).all()
        )
    assert max(finished[i] for i in few) < sorted(finished[i] for i in many)[len(many) // 2]


async def test_task_creation_is_rate_limited_per_user(settings: Settings, people: People) -> None:
    limited = msgspec.structs.replace(settings, task_rate_per_minute=3)
    async with AsyncTestClient(create_app(limited)) as client:
        people = People(client)
        owner, other = await people.new(), await people.new()
        workspace = await people.workspace(owner)
        for left in (2, 1, 0):
            accepted = await _start(client, owner, workspace)
            assert accepted.status_code == 202
            # Every answer of a limited route says where the caller stands.
            assert accepted.headers["RateLimit-Limit"] == "3"
            assert accepted.headers["RateLimit-Remaining"] == str(left)
        refused = await _start(client, owner, workspace)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert refused.headers["content-type"] == "application/problem+json"
        # Reads are not limited, and another user has a budget of their own.
        listed = await client.get(f"/v1/workspaces/{workspace}/tasks", headers=owner.headers)
        assert listed.status_code == 200
        theirs = await people.workspace(other)
        assert (await _start(client, other, theirs)).status_code == 202


async def test_a_task_whose_creator_left_is_failed_not_dispatched_forever(
    client: httpx.AsyncClient,
    people: People,
    engine: AsyncEngine,
    owner_engine: AsyncEngine,
    database,
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    member = await people.join(workspace, owner, "member")
    task_id = (await _start(client, member, workspace)).json()["id"]
    removed = await client.delete(
        f"/v1/workspaces/{workspace}/members/{member.id}", headers=owner.headers
    )
    assert removed.status_code == 204
    async with owner_engine.begin() as conn:  # as if dispatched long ago and never claimed
        await conn.execute(
            sa.text("update tasks set dispatched_at = now() - interval '1 hour' where id = :t"),
            {"t": task_id},
        )
    dispatcher = PgTaskDispatcher(engine, database.runtime_url)
    try:
        assert await dispatcher.recover(60) >= 1
    finally:
        await dispatcher.close()
    task = await _task(client, owner, workspace, task_id)
    assert (task["status"], task["error"]) == (
        "failed",
        "its creator can no longer write in this workspace",
    )


async def test_the_worker_serves_its_metrics(
    client: httpx.AsyncClient, people: People, settings: Settings
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    ids = [(await _start(client, owner, workspace)).json()["id"] for _ in range(3)]
    before = REGISTRY.get_sample_value("keel_task_attempts_total", {"outcome": "succeeded"}) or 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with running_worker(_worker_settings(settings, worker_metrics_port=port)):
        await wait_until(lambda: _all_final(client, owner, workspace, ids))
        async with httpx.AsyncClient() as http:
            await asyncio.sleep(0.1)
            exposed = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposed)
        for sample in family.samples
    }
    succeeded = samples[("keel_task_attempts_total", (("outcome", "succeeded"),))]
    assert succeeded - before >= 3
    assert ("keel_queue_jobs", (("state", "failed"),)) in samples
    assert ("keel_task_attempt_seconds_count", (("outcome", "succeeded"),)) in samples


async def test_a_worker_that_lost_the_task_announces_no_ending(
    client: httpx.AsyncClient,
    people: People,
    engine: AsyncEngine,
    owner_engine: AsyncEngine,
    cache: Cache,
) -> None:
    """Its lease expired and another attempt began while it streamed: its
    guarded finish changes nothing, and it publishes no ending either."""
    owner = await people.new()
    workspace = await people.workspace(owner)
    task_id = (await _start(client, owner, workspace)).json()["id"]
    streaming, release = asyncio.Event(), asyncio.Event()

    class HeldModel:
        name = f"held-{uuid.uuid4()}"

        async def stream(self, system: str, prompt: str) -> AsyncIterator[str]:
            streaming.set()
            await release.wait()
            yield "late answer"

    events = RecordedEvents()
    runner = _runner(engine, cache, HeldModel(), events)
    run = asyncio.create_task(runner.execute(TaskRef(workspace, uuid.UUID(task_id), owner.id)))
    await asyncio.wait_for(streaming.wait(), 10)
    async with owner_engine.begin() as conn:  # another worker's attempt 2 began
        await conn.execute(
            sa.text("update tasks set attempts = attempts + 1 where id = :t"), {"t": task_id}
        )
    release.set()
    assert (await asyncio.wait_for(run, 10)).outcome is Outcome.SKIPPED
    assert events.events[0].type.value == "task.started"
    assert not [event for event in events.events if event.type.terminal], events.events
