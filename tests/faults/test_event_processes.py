"""Live events across real processes (run with `pytest -m slow`): two `keel api`
processes and one `keel worker`, all children of the test. A worker's events
reach subscribers of both API processes; SIGTERM on an API process closes its
open streams with a retry hint instead of cutting them."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from subprocess import Popen

import httpx
import pytest

from entrypoints.devstack.process import spawn
from entrypoints.devstack.services import Services
from tests.conftest import JWT_SECRET, Database, People
from tests.faults.test_worker_faults import ROOT, Workers, _env, _keel
from tests.live import Message, messages

TERMINAL = {"task.succeeded", "task.failed", "task.cancelled"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def _api(env: dict[str, str], log: Path) -> AsyncIterator[tuple[str, Popen[bytes]]]:
    port = _free_port()
    process = spawn(
        [*_keel(), "api"],
        death_signal=signal.SIGKILL,
        log=log,
        env={**env, "KEEL_PORT": str(port)},
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=1) as http:
            deadline = time.monotonic() + 60
            while not await _ready(http):
                assert process.poll() is None, f"the API exited; its output is in {log}"
                assert time.monotonic() < deadline, "the API did not become ready"
                await asyncio.sleep(0.2)
        yield base, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def _ready(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def _follow(base: str, path: str, headers: dict[str, str]) -> list[Message]:
    seen: list[Message] = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as http,
        http.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200
        async for message in messages(response):
            if message.event:
                seen.append(message)
            if message.event in TERMINAL:
                break
    return seen


@pytest.mark.slow
async def test_two_api_processes_see_a_worker_process_events_and_stop_gracefully(
    people: People, database: Database, services: Services, tmp_path: Path
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    env = _env(database.runtime_url, services.redis_url, KEEL_JWT_SECRET=JWT_SECRET)
    async with (
        _api(env, tmp_path / "api-1.log") as (first, _),
        _api(env, tmp_path / "api-2.log") as (second, second_process),
    ):
        async with httpx.AsyncClient(base_url=first, timeout=30) as http:
            created = await http.post(
                f"/v1/workspaces/{workspace}/tasks",
                json={"kind": "generate", "input": {"prompt": "two processes"}},
                headers=owner.headers,
            )
            assert created.status_code == 202, created.text
        path = f"/v1/workspaces/{workspace}/tasks/{created.json()['id']}/events"
        workers = Workers(tmp_path, env)
        try:
            workers.start()
            one, two = await asyncio.wait_for(
                asyncio.gather(
                    _follow(first, path, owner.headers), _follow(second, path, owner.headers)
                ),
                60,
            )
        finally:
            workers.stop_all()
        assert [m.event for m in one][:2] == ["task.queued", "task.started"]
        assert one[-1].event == "task.succeeded"
        assert [(m.id, m.event, m.data) for m in one] == [(m.id, m.event, m.data) for m in two]

        async with (
            httpx.AsyncClient(base_url=second, timeout=30) as http,
            http.stream(
                "GET", f"/v1/workspaces/{workspace}/events", headers=owner.headers
            ) as response,
        ):
            assert response.status_code == 200
            await asyncio.sleep(0.5)
            second_process.send_signal(signal.SIGTERM)
            last = [message async for message in messages(response)][-1]
        assert last.retry is not None, "SIGTERM cut the stream without a retry hint"
        # uvicorn finishes its graceful shutdown, then re-raises the signal.
        assert second_process.wait(15) in (0, -signal.SIGTERM)
        log = (tmp_path / "api-2.log").read_text(errors="replace")
        assert "Waiting for application shutdown" in log, log[-2000:]
