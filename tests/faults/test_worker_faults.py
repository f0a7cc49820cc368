"""Fault scenarios against real `keel worker` processes (run with `pytest -m slow`).

Tasks are created through the API; `keel worker --concurrency 8` runs as child
processes of the test, against the same Postgres and a Redis queue under a
prefix of the test's own. Each scenario then breaks something on purpose:

1. SIGKILL of workers in the middle of tasks, again and again;
2. the queue's Redis restarting empty in the middle of a batch;
3. SIGTERM, which must let in-flight tasks finish before the process exits.

Whatever happens, every task must end in a final state, none may be lost, and
none may record two results. Each worker's output goes to a file in the
test's tmp_path; its tail is part of every failure message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from entrypoints.devstack.process import spawn
from entrypoints.devstack.redis import EmbeddedRedis
from entrypoints.devstack.services import Services
from tests.conftest import Database, People, Person

ROOT = Path(__file__).resolve().parents[2]
FINAL = ("succeeded", "failed", "cancelled")
CONCURRENCY = 8
WORKER_SECRET = "fault-injection-secret-" + "k" * 41  # 64 characters

_STATES = sa.text(
    "select status, count(*) from tasks where id = any(cast(:ids as uuid[])) group by status"
)
_RUNNING = sa.text(
    "select id::text from tasks where id = any(cast(:ids as uuid[])) and status = 'running'"
)
# One row per task: its state, and what its attempt history says happened.
_OUTCOMES = sa.text(
    """
    select t.id::text as id, t.status, t.attempts, t.result is not null as has_result,
           count(a.id) filter (where a.outcome = 'succeeded') as wins,
           count(a.id) filter (where a.outcome = 'started') as starts,
           count(a.id) filter (where a.outcome = 'lost') as lost
      from tasks t
      left join task_attempts a on a.workspace_id = t.workspace_id and a.task_id = t.id
     where t.id = any(cast(:ids as uuid[]))
     group by t.workspace_id, t.id
    """
)


@dataclass(frozen=True)
class Outcome:
    id: str
    status: str
    attempts: int
    has_result: bool
    wins: int
    starts: int
    lost: int


def _keel() -> list[str]:
    script = Path(sys.executable).with_name("keel")
    return [str(script)] if script.exists() else [sys.executable, "-m", "entrypoints.cli"]


def _env(database_url: str, redis_url: str, **changes: str) -> dict[str, str]:
    """The environment a worker gets: ours without any KEEL_* variable, then these."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KEEL_")}
    env.update(
        PYTHONUNBUFFERED="1",
        KEEL_DATABASE_URL=database_url,
        KEEL_REDIS_URL=redis_url,
        KEEL_JWT_SECRET=WORKER_SECRET,
        KEEL_QUEUE_PREFIX="{fault-" + uuid.uuid4().hex[:12] + "}",
        KEEL_TASK_LEASE_S="3",
        KEEL_TASK_REDISPATCH_S="3",
        KEEL_SIM_TOKEN_DELAY_MS="20",
        KEEL_SIM_FAIL_RATE="0",
        KEEL_RETRY_BASE_MS="20",
        KEEL_RETRY_CAP_MS="200",
        KEEL_LOG_LEVEL="INFO",
    )
    env.update(changes)
    return env


class Workers:
    """`keel worker` processes started by this test, each writing to its own file."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self._logs, self._env = logs, env
        self._started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self._logs / f"worker-{len(self._started)}.log"
        process = spawn(
            [*_keel(), "worker", "--concurrency", str(CONCURRENCY)],
            death_signal=signal.SIGKILL,  # never outlive the test run
            log=log,
            env=self._env,
            cwd=ROOT,
        )
        self._started.append((process, log))
        return process

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def tails(self, chars: int = 1500) -> str:
        parts = []
        for process, log in self._started:
            text = log.read_text(errors="replace") if log.exists() else ""
            state = "running" if process.poll() is None else f"exit {process.returncode}"
            parts.append(f"--- {log.name} (pid {process.pid}, {state}) ---\n{text[-chars:]}")
        return "\n".join(parts)

    def stop_all(self) -> None:
        for process, _ in self._started:
            if process.poll() is None:
                process.kill()
        for process, _ in self._started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


@contextlib.contextmanager
def _workers(tmp_path: Path, env: dict[str, str]) -> Iterator[Workers]:
    workers = Workers(tmp_path, env)
    try:
        yield workers
    finally:
        workers.stop_all()


async def _tenants(people: People, count: int, name: str) -> list[tuple[Person, uuid.UUID]]:
    """`count` users, each with a workspace of their own. Task creation is rate
    limited per user, so a big batch comes from several of them (as in life)."""
    tenants = []
    for index in range(count):
        owner = await people.new()
        tenants.append((owner, await people.workspace(owner, f"{name} {index}")))
    return tenants


async def _create(
    client: httpx.AsyncClient, tenants: list[tuple[Person, uuid.UUID]], count: int, tag: str
) -> list[str]:
    """`count` summarize tasks, spread over the tenants, each input different
    (so that none is answered from the AI-result cache)."""
    ids = []
    for index in range(count):
        owner, workspace = tenants[index % len(tenants)]
        response = await client.post(
            f"/v1/workspaces/{workspace}/tasks",
            json={"kind": "summarize", "input": {"text": f"{tag} task number {index}"}},
            headers=owner.headers,
        )
        assert response.status_code == 202, response.text
        ids.append(str(response.json()["id"]))
    return ids


async def _states(owner_engine: AsyncEngine, ids: list[str]) -> Counter[str]:
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(_STATES, {"ids": ids})).all()
    return Counter({str(status): int(count) for status, count in rows})


async def _running(owner_engine: AsyncEngine, ids: list[str]) -> set[str]:
    async with owner_engine.connect() as conn:
        return set((await conn.execute(_RUNNING, {"ids": ids})).scalars())


async def _outcomes(owner_engine: AsyncEngine, ids: list[str]) -> list[Outcome]:
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(_OUTCOMES, {"ids": ids})).all()
    return [Outcome(**row._asdict()) for row in rows]


def _final(counts: Counter[str]) -> int:
    return sum(counts[status] for status in FINAL)


async def _wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, workers: Workers
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s\n{workers.tails()}")
        await asyncio.sleep(0.1)


async def _wait_all_final(
    owner_engine: AsyncEngine, ids: list[str], timeout_s: float, workers: Workers
) -> Counter[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        counts = await _states(owner_engine, ids)
        if _final(counts) == len(ids):
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not every task is final after {timeout_s:.0f} s: {dict(counts)}\n"
                f"{workers.tails()}"
            )
        await asyncio.sleep(0.25)


def _check_integrity(outcomes: list[Outcome], ids: list[str], context: str) -> None:
    """Nothing lost, nothing unfinished, never two results."""
    assert sorted(o.id for o in outcomes) == sorted(ids), f"tasks lost\n{context}"
    unfinished = [o for o in outcomes if o.status not in FINAL]
    assert not unfinished, f"tasks not final: {unfinished[:5]}\n{context}"
    doubled = [o for o in outcomes if o.wins > 1]
    assert not doubled, f"tasks with two results: {doubled[:5]}\n{context}"
    unrecorded = [
        o for o in outcomes if o.status == "succeeded" and (o.wins, o.has_result) != (1, True)
    ]
    assert not unrecorded, (
        f"succeeded without exactly one recorded result: {unrecorded[:5]}\n{context}"
    )
    stray = [o for o in outcomes if o.status != "succeeded" and o.wins]
    assert not stray, f"a success recorded for a task that did not succeed: {stray[:5]}\n{context}"
    # Each claim increments `attempts` and writes one 'started' row in the same transaction.
    uncounted = [o for o in outcomes if o.starts != o.attempts]
    assert not uncounted, f"attempts and attempt history disagree: {uncounted[:5]}\n{context}"


@pytest.mark.slow
async def test_sigkill_workers_mid_task_loses_nothing(
    client: httpx.AsyncClient,
    people: People,
    database: Database,
    services: Services,
    owner_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    """Two workers; every 1.5 s the older one is SIGKILLed in the middle of its
    tasks and a new one takes its place. Lost leases are recovered, abandoned
    BullMQ jobs are found stalled, and each task still ends exactly once."""
    tasks, kills_wanted, kill_every_s = 200, 6, 1.5
    ids = await _create(client, await _tenants(people, 4, "Kill"), tasks, "sigkill")
    env = _env(database.runtime_url, services.redis_url, KEEL_SIM_TOKEN_DELAY_MS="40")
    with _workers(tmp_path, env) as workers:
        alive = [workers.start(), workers.start()]
        kills = 0
        deadline = time.monotonic() + 120
        while kills < kills_wanted and time.monotonic() < deadline:
            await asyncio.sleep(kill_every_s)
            counts = await _states(owner_engine, ids)
            if _final(counts) == len(ids):
                break
            if not counts["running"]:
                continue  # nothing in flight (workers still starting): a kill would prove nothing
            victim = alive.pop(0)
            workers.kill(victim)
            kills += 1
            alive.append(workers.start())
        counts = await _wait_all_final(owner_engine, ids, 240, workers)
        outcomes = await _outcomes(owner_engine, ids)
        context = f"{kills} kill(s); states {dict(counts)}\n{workers.tails()}"
    assert kills >= 3, f"the batch ended before the kills could matter\n{context}"
    _check_integrity(outcomes, ids, context)
    recovered = [o for o in outcomes if o.lost or o.attempts > 1]
    assert recovered, f"no task shows a lost lease or a second attempt\n{context}"


@pytest.mark.slow
async def test_redis_flushed_mid_batch_every_task_still_finishes(
    client: httpx.AsyncClient,
    people: People,
    database: Database,
    owner_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    """The queue's Redis (an embedded one of this test's own, without
    persistence) stops in the middle of a batch and comes back empty: every
    waiting, delayed and active job is gone. The workers must survive the
    outage, and recovery must dispatch the tasks again."""
    tasks, finished_before_outage = 100, 20
    queue_redis = EmbeddedRedis(tmp_path / "queue", persist=False)
    redis_url = queue_redis.start()
    try:
        ids = await _create(client, await _tenants(people, 2, "Flush"), tasks, "flush")
        env = _env(database.runtime_url, redis_url)
        with _workers(tmp_path, env) as workers:
            processes = [workers.start(), workers.start()]

            async def some_finished() -> bool:
                return (await _states(owner_engine, ids))["succeeded"] >= finished_before_outage

            await _wait_for(some_finished, 120, "the first tasks finishing", workers)
            queue_redis.stop()
            before = await _states(owner_engine, ids)
            await asyncio.sleep(1.0)  # an outage: the workers' connections fail
            queue_redis.start()  # empty: no AOF, no RDB
            assert len(ids) - _final(before) >= 20, (
                f"the batch was almost done before the outage: {dict(before)}"
            )
            counts = await _wait_all_final(owner_engine, ids, 150, workers)
            outcomes = await _outcomes(owner_engine, ids)
            context = f"at the outage {dict(before)}; now {dict(counts)}\n{workers.tails()}"
            assert all(p.poll() is None for p in processes), f"a worker died\n{context}"
    finally:
        queue_redis.stop()
    _check_integrity(outcomes, ids, context)
    assert counts["succeeded"] == len(ids), context


@pytest.mark.slow
async def test_sigterm_lets_in_flight_tasks_finish(
    client: httpx.AsyncClient,
    people: People,
    database: Database,
    services: Services,
    owner_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    """SIGTERM while tasks run (about 2.4 s each): the worker takes nothing new,
    finishes what it holds, and exits 0; a new worker runs the rest. A graceful
    stop costs no task an attempt."""
    ids = await _create(client, await _tenants(people, 1, "Sigterm"), 10, "sigterm")
    env = _env(database.runtime_url, services.redis_url, KEEL_SIM_TOKEN_DELAY_MS="100")
    with _workers(tmp_path, env) as workers:
        first = workers.start()
        in_flight: set[str] = set()

        async def some_running() -> bool:
            in_flight.update(await _running(owner_engine, ids))
            return len(in_flight) >= 2

        await _wait_for(some_running, 60, "tasks running", workers)
        first.send_signal(signal.SIGTERM)
        in_flight.update(await _running(owner_engine, ids))
        signalled = time.monotonic()

        async def exited() -> bool:
            return first.poll() is not None

        await _wait_for(exited, 30, "the worker exiting after SIGTERM", workers)
        stop_s = time.monotonic() - signalled
        assert first.returncode == 0, f"exit {first.returncode}\n{workers.tails()}"
        after_stop = {o.id: o for o in await _outcomes(owner_engine, ids)}
        context = f"in flight {sorted(in_flight)}; stopped in {stop_s:.1f} s\n{workers.tails()}"
        left_running = [o for o in after_stop.values() if o.status == "running"]
        assert not left_running, f"left running: {left_running}\n{context}"
        unfinished = [after_stop[i] for i in in_flight if after_stop[i].status != "succeeded"]
        assert not unfinished, f"in-flight tasks that did not succeed: {unfinished}\n{context}"

        workers.start()
        counts = await _wait_all_final(owner_engine, ids, 120, workers)
        outcomes = await _outcomes(owner_engine, ids)
        context = f"{dict(counts)}; {context}"
    _check_integrity(outcomes, ids, context)
    assert counts["succeeded"] == len(ids), context
    again = [o for o in outcomes if o.attempts != 1 or o.lost]
    assert not again, f"tasks that needed another attempt: {again}\n{context}"
