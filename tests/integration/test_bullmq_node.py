"""Keel's queue as Node's bullmq (and so every BullMQ dashboard) sees it.

The real npm package, installed once into a cache directory
(KEEL_NODE_CACHE, default ~/.cache/keel-node), drives tests/integration/node/
dashboard.js against this run's Redis while Keel workers run: the workers
are listed, jobs are named and carry their attempt, a dead letter says why it
failed, finished jobs and metrics are there, and retrying a dead letter as a
dashboard does replays its task to the end. Skipped only when npm is missing
or cannot reach its registry.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.redis.events import stream_key
from domain.events import StreamRef
from entrypoints.devstack.services import Services
from entrypoints.settings import Settings
from tests.conftest import People
from tests.integration.test_tasks import _start, _task, _worker_settings, running_worker, wait_until

SCRIPT = Path(__file__).parent / "node" / "dashboard.js"
_OFFLINE = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "network")


def _skip_unless_required(why: str) -> None:
    """A newcomer without Node skips; CI (KEEL_REQUIRE_NODE=1) fails instead."""
    if os.environ.get("KEEL_REQUIRE_NODE") == "1":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    cache = Path(os.environ.get("KEEL_NODE_CACHE", Path.home() / ".cache" / "keel-node"))
    modules = cache / "node_modules"
    package = modules / "bullmq" / "package.json"
    if package.exists() and json.loads(package.read_text())["version"].startswith("5."):
        return modules
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        _skip_unless_required("Node.js and npm are not installed: cannot run Node's bullmq")
    cache.mkdir(parents=True, exist_ok=True)
    installed = subprocess.run(
        [npm, "install", "--prefix", str(cache), "bullmq@5", "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if installed.returncode != 0:
        output = installed.stdout + installed.stderr
        if any(sign in output for sign in _OFFLINE):
            _skip_unless_required(f"npm cannot reach its registry: {output.strip()[-300:]}")
        pytest.fail(f"npm install bullmq@5 failed:\n{output}")
    return modules


async def _dashboard(modules: Path, redis_url: str, prefix: str, *args: str) -> Any:
    environment = {
        **os.environ,
        "NODE_PATH": str(modules),
        "KEEL_REDIS_URL": redis_url,
        "KEEL_QUEUE_PREFIX": prefix,
    }
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        *args,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


async def _events(redis: Redis, workspace: uuid.UUID, task_id: str) -> list[str]:
    entries = await redis.xrange(stream_key(StreamRef(workspace, uuid.UUID(task_id))))
    return [json.loads(fields[b"e"])["type"] for _, fields in entries]


async def test_a_node_dashboard_sees_workers_jobs_reasons_and_replays_a_dead_letter(
    client: httpx.AsyncClient,
    people: People,
    settings: Settings,
    services: Services,
    owner_engine: AsyncEngine,
    redis: Redis,
    node_modules: Path,
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    failing = _worker_settings(settings, sim_fail_rate=1.0)
    prefix = failing.queue_prefix
    working = _worker_settings(settings, sim_fail_rate=0.0, queue_prefix=prefix)

    doomed_body = {"kind": "summarize", "input": {"text": "doomed"}, "max_attempts": 2}
    doomed = (await _start(client, owner, workspace, doomed_body)).json()["id"]
    async with running_worker(failing):
        await wait_until(lambda: _status(client, owner, workspace, doomed, "failed"), timeout_s=30)

    fine_body = {"kind": "generate", "input": {"prompt": "a fine tagline"}}
    async with running_worker(working):
        fine = (await _start(client, owner, workspace, fine_body)).json()["id"]
        await wait_until(lambda: _status(client, owner, workspace, fine, "succeeded"))
        seen = await _dashboard(node_modules, services.redis_url, prefix, "inspect")

        assert seen["workers"], "getWorkers() lists the running Keel worker"
        assert all(":w:" in name for name in seen["workers"])
        # The outbox is every workspace's: tasks other tests left queued may
        # run here too, so only this test's own jobs are looked at.
        assert seen["counts"]["failed"] >= 1
        (dead,) = [job for job in seen["failed"] if job["data"]["task_id"] == doomed]
        assert dead["id"] == f"{doomed}.2"
        assert dead["name"] == "summarize"
        assert dead["data"]["attempt"] == 2
        assert dead["failedReason"] == "simulated transient failure (attempt 2)"
        completed = {job["id"]: job for job in seen["completed"]}
        assert completed[f"{fine}.1"]["name"] == "generate"
        assert completed[f"{fine}.1"]["returnvalue"] == "succeeded"
        assert completed[f"{doomed}.1"]["returnvalue"] == "retrying"
        assert seen["metrics"]["completed"] >= 2
        assert seen["metrics"]["failed"] >= 1

        retried = await _dashboard(node_modules, services.redis_url, prefix, "retry", f"{doomed}.2")
        assert retried["retried"] == f"{doomed}.2"
        await wait_until(lambda: _status(client, owner, workspace, doomed, "succeeded"))

    task = await _task(client, owner, workspace, doomed)
    assert (task["attempts"], task["error"]) == (3, None)
    async with owner_engine.connect() as conn:
        history = await conn.execute(
            sa.text(
                "select attempt, outcome from task_attempts where task_id = :t order by at, id"
            ),
            {"t": doomed},
        )
        outcomes = [tuple(row) for row in history]
    assert outcomes == [
        (1, "started"),
        (1, "retrying"),
        (2, "started"),
        (2, "failed"),
        (2, "replayed"),
        (3, "started"),
        (3, "succeeded"),
    ]
    events = await _events(redis, workspace, doomed)
    assert events.index("task.failed") < events.index("task.replayed")
    assert events[-1] == "task.succeeded", "the replayed run's ending is not dropped"


async def _status(
    client: httpx.AsyncClient, person: Any, workspace: uuid.UUID, task_id: str, status: str
) -> bool:
    return (await _task(client, person, workspace, task_id))["status"] == status
