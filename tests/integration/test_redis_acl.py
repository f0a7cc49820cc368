"""Keel runs with a Redis ACL user that may touch only Keel's own keys and
channels (docs/deploying.md: "A Redis user for Keel"): the API's cached
reads, UI state, stream tickets, task creation and event streams, and a
worker running the task, all through that user; `keel doctor` says it is one."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from entrypoints.devstack.process import spawn
from entrypoints.devstack.redis import EmbeddedRedis
from entrypoints.doctor.redis import redis_checks
from entrypoints.doctor.report import Status
from entrypoints.settings import Settings
from tests.conftest import Database, bearer
from tests.live import live

ROOT = Path(__file__).resolve().parents[2]
# The rule docs/deploying.md documents (its `ACL SETUSER` line, minus the password).
KEEL_ACL = (
    "resetkeys ~keel:* ~keel-rate:* ~{keel}:* resetchannels &keel:*"
    " +@all -@dangerous +client|setname +client|getname +info"
)


@pytest.fixture
def restricted_redis(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An embedded Redis with a `keel` ACL user; (its URL, the default user's)."""
    server = EmbeddedRedis(tmp_path, persist=False)
    url = server.start()
    try:
        yield url.replace("unix://", "unix://keel:keel-password@", 1), url
    finally:
        server.stop()


def test_the_rule_is_the_one_the_deploying_guide_gives() -> None:
    assert (
        f"ACL SETUSER keel on >PASSWORD {KEEL_ACL}" in (ROOT / "docs" / "deploying.md").read_text()
    )


async def _add_user(admin_url: str) -> None:
    admin = Redis.from_url(admin_url)
    try:
        await admin.execute_command(
            "ACL", "SETUSER", "keel", "on", ">keel-password", *KEEL_ACL.split()
        )
    finally:
        await admin.aclose()


async def test_keel_works_as_a_user_limited_to_its_keys(
    restricted_redis: tuple[str, str],
    settings: Settings,
    database: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    url, admin_url = restricted_redis
    await _add_user(admin_url)
    limited = Redis.from_url(url)
    with pytest.raises(NoPermissionError):
        await limited.get("someone-elses:key")
    await limited.aclose()

    env = {name: value for name, value in os.environ.items() if not name.startswith("KEEL_")}
    env.update(
        KEEL_DATABASE_URL=database.runtime_url,
        KEEL_REDIS_URL=url,
        KEEL_SIM_TOKEN_DELAY_MS="1",
        KEEL_QUEUE_PREFIX="{keel}",
    )
    worker = spawn(
        [sys.executable, "-m", "entrypoints.cli", "worker"],
        death_signal=signal.SIGKILL,
        log=tmp_path / "worker.log",
        env=env,
        cwd=ROOT,
    )
    owner = bearer(uuid.uuid4())
    try:
        async with live(msgspec.structs.replace(settings, redis_url=url)) as http:
            workspace = (
                await http.post("/v1/workspaces", json={"name": "ACL"}, headers=owner)
            ).json()["id"]
            base = f"/v1/workspaces/{workspace}"
            body = {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}}
            document = (await http.post(f"{base}/foundation", json=body, headers=owner)).json()[
                "id"
            ]
            for _ in range(3):  # a fill, then reads from the cache
                read = await http.get(f"{base}/foundation/{document}", headers=owner)
                assert read.status_code == 200, read.text
            put = await http.put(f"{base}/ui-state/panel", json={"open": True}, headers=owner)
            assert put.status_code == 200, put.text
            assert (await http.get(f"{base}/ui-state/panel", headers=owner)).status_code == 200
            ticket = await http.post(f"{base}/stream-tickets", json={}, headers=owner)
            assert ticket.status_code == 201, ticket.text
            created = await http.post(
                f"{base}/tasks", json={"kind": "summarize", "input": {"text": "acl"}}, headers=owner
            )
            assert created.status_code == 202, created.text
            task = created.json()["id"]
            again = await http.post(
                f"{base}/tasks", json={"kind": "summarize", "input": {"text": "b"}}, headers=owner
            )
            # The rate limiter counts in Redis (it fails open when it cannot).
            spent = int(created.headers["RateLimit-Remaining"]) - int(
                again.headers["RateLimit-Remaining"]
            )
            assert spent == 1
            async with http.stream("GET", f"{base}/tasks/{task}/events", headers=owner) as events:
                assert events.status_code == 200
                seen = [line async for line in events.aiter_lines() if line.startswith("event:")]
            assert seen[-1] == "event: task.succeeded", (
                seen,
                (tmp_path / "worker.log").read_text(),
            )
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)
    # Nothing was refused on the way (the rate limiter would fail open).
    for said in ((tmp_path / "worker.log").read_text(), caplog.text):
        assert "NOPERM" not in said, said
        assert "no permissions" not in said.lower(), said


async def test_doctor_names_the_user_keel_connects_as(restricted_redis: tuple[str, str]) -> None:
    url, admin_url = restricted_redis
    await _add_user(admin_url)
    limited = {c.name: c for c in await redis_checks(url, cluster=False)}
    assert limited["redis.user"].status is Status.OK, limited["redis.user"]
    everything = {c.name: c for c in await redis_checks(admin_url, cluster=False)}
    assert everything["redis.user"].status is Status.WARN
    assert "every key" in everything["redis.user"].message
