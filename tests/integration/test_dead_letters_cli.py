"""`keel dead-letters list|show|replay` against the queue a real worker filled."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from entrypoints.cli import main
from entrypoints.devstack.services import Services
from entrypoints.settings import Settings
from tests.conftest import People
from tests.integration.test_tasks import _start, _task, _worker_settings, running_worker, wait_until


async def test_an_operator_lists_shows_and_replays_a_dead_letter(
    client: httpx.AsyncClient,
    people: People,
    settings: Settings,
    services: Services,
    owner_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    failing = _worker_settings(settings, sim_fail_rate=1.0)
    monkeypatch.setenv("KEEL_REDIS_URL", services.redis_url)
    monkeypatch.setenv("KEEL_QUEUE_PREFIX", failing.queue_prefix)
    body = {"kind": "summarize", "input": {"text": "for the operator"}, "max_attempts": 1}
    task_id = (await _start(client, owner, workspace, body)).json()["id"]

    async def failed() -> bool:
        return (await _task(client, owner, workspace, task_id))["status"] == "failed"

    async with running_worker(failing):
        await wait_until(failed, timeout_s=30)

    async def keel(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, ["dead-letters", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await keel("list")
    assert code == 0
    assert f"{task_id}.1  summarize  {workspace}" in out
    assert "simulated transient failure (attempt 1)" in out
    code, out, _ = await keel("show", task_id)
    assert code == 0
    assert f"job_id: {task_id}.1" in out
    assert "attempt: 1" in out
    # Absent ids, and patterns (the task id is looked up with ZSCAN MATCH).
    patterns = ("*", f"{task_id[:8]}*", "[0-9a-f]*", f"{task_id}.*", f"{task_id}?1")
    for missing in ("0190b7c2-0000-7000-8000-000000000000", f"{task_id}.2", *patterns):
        code, _, err = await keel("replay", missing)
        assert code == 1, missing
        assert f"no dead letter {missing} in the queue" in err
    assert (await keel("show"))[0] == 2

    code, out, _ = await keel("replay", f"{task_id}.1")
    assert code == 0
    assert f"replays task {task_id}" in out
    assert (await keel("replay", task_id))[0] == 1, "retried already: no longer a dead letter"

    async def succeeded() -> bool:
        return (await _task(client, owner, workspace, task_id))["status"] == "succeeded"

    async with running_worker(_worker_settings(settings, queue_prefix=failing.queue_prefix)):
        await wait_until(succeeded)
    task = await _task(client, owner, workspace, task_id)
    assert (task["attempts"], task["error"]) == (2, None)
