"""The system under load: Postgres, Redis, API processes and workers.

The services are the configured ones (KEEL_DATABASE_URL, KEEL_REDIS_URL and
KEEL_JWT_SECRET set: a migrated database, as `keel dev` leaves it;
KEEL_MIGRATION_DATABASE_URL adds the statement counts), else those of the
tests (entrypoints.devstack.services: KEEL_TEST_* URLs or embedded servers)
with a fresh database of its own, dropped afterwards. Each API process is a
`keel api` on a port of its own (the agents are spread over them, as a load
balancer would); each worker is a `keel worker` with its metrics endpoint.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import httpx

from adapters.postgres.provisioning import (
    drop_database,
    drop_role,
    ensure_database,
    ensure_login_role,
    with_database,
    with_user,
)
from entrypoints.devstack.process import spawn, stop
from entrypoints.devstack.services import test_services
from entrypoints.migrations import upgrade

LOGS = Path(tempfile.gettempdir())


@dataclass(frozen=True)
class Target:
    runtime_url: str
    owner_url: str | None  # for pg_stat_statements; None: not counted
    redis_url: str
    secret: str
    origin: str


async def _provision(server_url: str, name: str, role: str, password: str) -> tuple[str, str]:
    await ensure_database(server_url, name)
    owner = with_database(server_url, name)
    await asyncio.to_thread(upgrade, owner, log=False)
    await ensure_login_role(owner, role, password)
    return owner, with_user(owner, role, password)


@contextmanager
def target() -> Iterator[Target]:
    env = os.environ
    if env.get("KEEL_DATABASE_URL") and env.get("KEEL_REDIS_URL"):
        if not env.get("KEEL_JWT_SECRET"):
            raise SystemExit("keel bench: set KEEL_JWT_SECRET to the secret of that database's API")
        yield Target(
            env["KEEL_DATABASE_URL"],
            env.get("KEEL_MIGRATION_DATABASE_URL"),
            env["KEEL_REDIS_URL"],
            env["KEEL_JWT_SECRET"],
            "configured KEEL_* URLs",
        )
        return
    suffix = uuid.uuid4().hex[:8]
    name, role = f"keel_bench_{suffix}", f"keel_bench_rt_{suffix}"
    with test_services() as services:
        owner, runtime = asyncio.run(
            _provision(services.postgres_url, name, role, secrets.token_hex(8))
        )
        try:
            secret = secrets.token_urlsafe(48)
            yield Target(runtime, owner, services.redis_url, secret, services.origin)
        finally:
            asyncio.run(drop_database(services.postgres_url, name))
            asyncio.run(drop_role(services.postgres_url, role))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    """`keel api` and `keel worker` processes; their URLs and pids once started."""

    target: Target
    api_processes: int
    workers: int
    concurrency: int
    settings: dict[str, str]
    apis: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    pids: dict[str, list[int]] = field(default_factory=dict)
    _processes: list[Popen[bytes]] = field(default_factory=list)

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KEEL_DATABASE_URL": self.target.runtime_url,
            "KEEL_REDIS_URL": self.target.redis_url,
            "KEEL_JWT_SECRET": self.target.secret,
            "KEEL_LOG_LEVEL": "WARNING",
            **self.settings,
            **extra,
        }

    def _spawn(self, kind: str, args: list[str], **extra: str) -> None:
        log = LOGS / f"keel-bench-{kind}-{os.getpid()}-{len(self._processes)}.log"
        command = [sys.executable, "-m", "entrypoints.cli", *args]
        process = spawn(command, log=log, env=self._env(**extra))
        self._processes.append(process)
        self.pids.setdefault(kind, []).append(process.pid)

    def __enter__(self) -> Stack:
        try:
            for _ in range(self.api_processes):
                port = _free_port()
                self._spawn("api", ["api"], KEEL_HOST="127.0.0.1", KEEL_PORT=str(port))
                self.apis.append(f"http://127.0.0.1:{port}")
                self.metrics.append(f"http://127.0.0.1:{port}/metrics")
            for _ in range(self.workers):
                port = _free_port()
                args = ["worker", "--concurrency", str(self.concurrency)]
                self._spawn("worker", args, KEEL_WORKER_METRICS_PORT=str(port))
                self.metrics.append(f"http://127.0.0.1:{port}/metrics")
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        for url in [f"{api}/readyz" for api in self.apis] + self.metrics[len(self.apis) :]:
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or any(
                    p.poll() is not None for p in self._processes
                ):
                    raise SystemExit(
                        f"keel bench: {url} did not answer; logs: {LOGS}/keel-bench-*.log"
                    )
                time.sleep(0.2)

    def dead(self) -> list[str]:
        """The processes that exited, each with its exit code and log."""
        kinds = {pid: kind for kind, pids in self.pids.items() for pid in pids}
        return [
            f"keel {kinds[p.pid]} (pid {p.pid}) exited with {p.returncode}"
            for p in self._processes
            if p.poll() is not None
        ]

    def __exit__(self, *_: object) -> None:
        for process in self._processes:
            stop(process)
        self._processes.clear()
