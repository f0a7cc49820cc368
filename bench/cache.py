"""GET foundation/{id} with the cache on and off, beside the physical ceilings.

    .venv/bin/python -m bench.cache [--seconds 20] [--connections 32]

Services: KEEL_TEST_DATABASE_URL / KEEL_TEST_REDIS_URL when set (a superuser
URL), else the embedded servers. Each server under test is one uvicorn
process; the load comes from wrk (Debian package `wrk`), a separate process,
one thread, on the other core. Servers run one at a time, each warmed up
for 3 s before it is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from adapters.postgres.provisioning import (
    drop_database,
    drop_role,
    ensure_database,
    ensure_login_role,
    with_database,
    with_user,
)
from entrypoints.devstack.services import Services, test_services
from entrypoints.http.auth import issue_token
from entrypoints.migrations import upgrade

SECRET = secrets.token_urlsafe(48)
CONTENT = {"voice": "warm, direct, " * 100, "values": ["clarity", "care"]}


@dataclass(frozen=True)
class Result:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _server(app: str, env: dict[str, str], factory: bool = False) -> Iterator[str]:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    # The servers' log lines (one per request) go to a file, not between the results.
    log = Path(tempfile.gettempdir()) / f"keel-bench-{app.split(':')[0]}-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, *(["--factory"] if factory else [])],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    print(f"{app}: log in {log}", file=sys.stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (
                    httpx.get(
                        f"{base}/constant" if "reference" in app else f"{base}/healthz", timeout=1
                    ).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"{app} did not start; its output: {log}")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(
    name: str,
    url: str,
    headers: dict[str, str],
    seconds: int,
    connections: int,
    *,
    warmup_s: int = 3,
    script: list[str] | None = None,
    before: Callable[[], None] | None = None,
) -> Result:
    """wrk's rate and latency percentiles, after a warm-up run.

    `script`: a Lua script and its arguments (`-s FILE -- ARGS`); `before`
    runs before each of the two wrk runs (e.g. to write the script's input).
    """
    header_args = [arg for key, value in headers.items() for arg in ("-H", f"{key}: {value}")]
    lua = ["-s", script[0]] if script else []
    tail = ["--", *script[1:]] if script else []
    base = ["wrk", "-t1", f"-c{connections}", "--latency", *header_args, *lua, url]
    if before is not None:
        before()
    subprocess.run([*base[:2], f"-d{warmup_s}s", *base[2:], *tail], check=True, capture_output=True)
    if before is not None:
        before()
    output = subprocess.run(
        [*base[:2], f"-d{seconds}s", *base[2:], *tail], check=True, capture_output=True, text=True
    ).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"{name}: non-2xx answers\n{output}")

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)$", output, re.MULTILINE)
        assert match, output
        return float(match[1]) * _UNITS[match[2]]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert rate, output
    return Result(name, float(rate[1]), latency("50"), latency("99"))


async def _provision(server_url: str, name: str, role: str, password: str) -> str:
    await ensure_database(server_url, name)
    owner = with_database(server_url, name)
    await asyncio.to_thread(upgrade, owner)
    await ensure_login_role(owner, role, password)
    return with_user(owner, role, password)


@contextmanager
def keel_env(services: Services, **extra: str) -> Iterator[dict[str, str]]:
    """KEEL_* variables for a server on a fresh, migrated database of its own
    (dropped afterwards, with its runtime role)."""
    suffix = uuid.uuid4().hex[:8]
    name, role, password = f"keel_bench_{suffix}", f"keel_bench_rt_{suffix}", secrets.token_hex(8)
    runtime = asyncio.run(_provision(services.postgres_url, name, role, password))
    try:
        yield {
            "KEEL_DATABASE_URL": runtime,
            "KEEL_REDIS_URL": services.redis_url,
            "KEEL_JWT_SECRET": SECRET,
            **extra,
        }
    finally:
        asyncio.run(drop_database(services.postgres_url, name))
        asyncio.run(drop_role(services.postgres_url, role))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.cache loads the server with wrk: install it (apt-get install wrk)")
    results: list[Result] = []
    with test_services() as services, keel_env(services) as env:
        runtime = env["KEEL_DATABASE_URL"]
        user = uuid.uuid4()
        headers = {"Authorization": f"Bearer {issue_token(SECRET, 'authenticated', user)}"}
        app = "entrypoints.http.asgi:app"
        with _server(app, env) as base:
            workspace = httpx.post(
                f"{base}/v1/workspaces", json={"name": "bench"}, headers=headers
            ).json()["id"]
            document = httpx.post(
                f"{base}/v1/workspaces/{workspace}/foundation",
                json={"kind": "brand", "title": "Voice", "content": CONTENT, "tags": ["a"]},
                headers=headers,
            ).json()["id"]
            url = f"{base}/v1/workspaces/{workspace}/foundation/{document}"
            print(f"document: {len(httpx.get(url, headers=headers).content)} bytes")
            results.append(
                _wrk(
                    "GET foundation/{id}, cache on",
                    url,
                    headers,
                    args.seconds,
                    args.connections,
                )
            )
        with _server(app, {**env, "KEEL_CACHE": "false"}) as base:
            url = f"{base}/v1/workspaces/{workspace}/foundation/{document}"
            results.append(
                _wrk(
                    "GET foundation/{id}, cache off",
                    url,
                    headers,
                    args.seconds,
                    args.connections,
                )
            )
        reference_env = {
            "BENCH_REDIS_URL": services.redis_url,
            "BENCH_DATABASE_URL": runtime,
            "BENCH_USER": str(user),
            "BENCH_WORKSPACE": workspace,
            "BENCH_DOCUMENT": document,
        }
        with _server("bench.reference:app", reference_env) as base:
            for path, label in (
                ("/constant", "bare Litestar handler, constant"),
                ("/redis-get", "bare handler, one Redis GET of 2 KB"),
                ("/asyncpg-rls", "raw asyncpg RLS read (one transaction)"),
            ):
                results.append(_wrk(label, f"{base}{path}", {}, args.seconds, args.connections))
    print(f"\n{args.connections} connections, {args.seconds} s each, services: {services.origin}\n")
    print("| endpoint | requests/s | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    for result in results:
        print(
            f"| {result.name} | {result.requests_per_s:,.0f} | {result.p50_ms:.2f} |"
            f" {result.p99_ms:.2f} |"
        )
    on, off, ceiling = results[0], results[1], results[3]
    print(
        f"\ncache on / off: {on.requests_per_s / off.requests_per_s:.1f}x;"
        f" cache on / one-GET ceiling: {on.requests_per_s / ceiling.requests_per_s:.0%};"
        f" cached p99 / p50: {on.p99_ms / on.p50_ms:.1f}"
    )


if __name__ == "__main__":
    main()
