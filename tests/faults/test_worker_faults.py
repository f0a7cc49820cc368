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
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from entrypoints.devstack.process import spawn
from entrypoints.devstack.redis import EmbeddedRedis
from entrypoints.devstack.services import Services
from tests.conftest import Database, People, Person
from tests.faults import ledger

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 8
WORKER_SECRET = "fault-injection-secret-" + "k" * 41  # 64 characters


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


async def _wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, workers: Workers
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s\n{workers.tails()}")
        await asyncio.sleep(0.1)


def _report(scenario: str, ids: list[str], counts: Counter[str]) -> None:
    """The fault report's line: every task was created with a 202 (`_create`
    asserts it); the workers' events are not followed here."""
    line = ledger.summary(scenario, len(ids), {}, len(ids), ledger.final(counts), "not followed")
    print("\n" + line)


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
            counts = await ledger.states(owner_engine, ids)
            if ledger.final(counts) == len(ids):
                break
            if not counts["running"]:
                continue  # nothing in flight (workers still starting): a kill would prove nothing
            victim = alive.pop(0)
            workers.kill(victim)
            kills += 1
            alive.append(workers.start())
        counts = await ledger.wait_all_final(owner_engine, ids, 240, workers.tails)
        outcomes = await ledger.outcomes(owner_engine, ids)
        context = f"{kills} kill(s); states {dict(counts)}\n{workers.tails()}"
    _report(f"worker SIGKILL storm, {kills} kills", ids, counts)
    assert kills >= 3, f"the batch ended before the kills could matter\n{context}"
    ledger.check_integrity(outcomes, ids, context)
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
                return (await ledger.states(owner_engine, ids))[
                    "succeeded"
                ] >= finished_before_outage

            await _wait_for(some_finished, 120, "the first tasks finishing", workers)
            queue_redis.stop()
            before = await ledger.states(owner_engine, ids)
            await asyncio.sleep(1.0)  # an outage: the workers' connections fail
            queue_redis.start()  # empty: no AOF, no RDB
            assert len(ids) - ledger.final(before) >= 20, (
                f"the batch was almost done before the outage: {dict(before)}"
            )
            counts = await ledger.wait_all_final(owner_engine, ids, 150, workers.tails)
            outcomes = await ledger.outcomes(owner_engine, ids)
            context = f"at the outage {dict(before)}; now {dict(counts)}\n{workers.tails()}"
            _report("queue Redis back empty", ids, counts)
            assert all(p.poll() is None for p in processes), f"a worker died\n{context}"
    finally:
        queue_redis.stop()
    ledger.check_integrity(outcomes, ids, context)
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
            in_flight.update(await ledger.running(owner_engine, ids))
            return len(in_flight) >= 2

        await _wait_for(some_running, 60, "tasks running", workers)
        first.send_signal(signal.SIGTERM)
        in_flight.update(await ledger.running(owner_engine, ids))
        signalled = time.monotonic()

        async def exited() -> bool:
            return first.poll() is not None

        await _wait_for(exited, 30, "the worker exiting after SIGTERM", workers)
        stop_s = time.monotonic() - signalled
        assert first.returncode == 0, f"exit {first.returncode}\n{workers.tails()}"
        after_stop = {o.id: o for o in await ledger.outcomes(owner_engine, ids)}
        context = f"in flight {sorted(in_flight)}; stopped in {stop_s:.1f} s\n{workers.tails()}"
        left_running = [o for o in after_stop.values() if o.status == "running"]
        assert not left_running, f"left running: {left_running}\n{context}"
        unfinished = [after_stop[i] for i in in_flight if after_stop[i].status != "succeeded"]
        assert not unfinished, f"in-flight tasks that did not succeed: {unfinished}\n{context}"

        workers.start()
        counts = await ledger.wait_all_final(owner_engine, ids, 120, workers.tails)
        outcomes = await ledger.outcomes(owner_engine, ids)
        context = f"{dict(counts)}; {context}"
    _report("worker SIGTERM mid-batch", ids, counts)
    ledger.check_integrity(outcomes, ids, context)
    assert counts["succeeded"] == len(ids), context
    again = [o for o in outcomes if o.attempts != 1 or o.lost]
    assert not again, f"tasks that needed another attempt: {again}\n{context}"
