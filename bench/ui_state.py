"""UI-state reads and writes: Redis (Keel's store) against a Postgres table.

    .venv/bin/python -m bench.ui_state [--seconds 10] [--concurrency 32]

Services: KEEL_TEST_DATABASE_URL / KEEL_TEST_REDIS_URL when set (a superuser
URL), else the embedded servers. Two levels, one at a time, each warmed up
before it is measured:

- store level: one process, `--concurrency` coroutines in a closed loop, each
  timing its own calls. Redis through `RedisUIStateStore` (the adapter the API
  uses: a GET to read, the put script to write); Postgres through an asyncpg
  pool of 10 (KEEL_DB_POOL_SIZE's default) on a throwaway table in a scratch
  database (upsert with an expiry column, select by (workspace, user, key)),
  dropped afterwards;
- HTTP level (Redis only): GET and PUT /v1/workspaces/{ws}/ui-state/{key} on
  one uvicorn process, load from wrk (`apt-get install wrk`), one thread, as
  in bench.cache.

Every value is the same 2 KB JSON document; each client works on its own
(workspace, user) and picks among 20 keys.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import msgspec

from adapters.postgres.provisioning import drop_database, drop_role, ensure_database, with_database
from adapters.redis.client import create_redis
from adapters.redis.ui_state import RedisUIStateStore
from bench.cache import _UNITS, SECRET, Result, _provision, _server
from domain.ui_state import UIState, UIStateQuota
from entrypoints.devstack.services import test_services
from entrypoints.http.auth import issue_token

VALUE = msgspec.json.encode({"panels": {"left": "open", "width": 320}, "draft": "d" * 1950})
KEYS = [f"panel.{i:02}" for i in range(20)]
WARMUP_S = 2.0
QUOTA = UIStateQuota()

_TABLE = """
create table ui_state (
  workspace_id uuid not null,
  user_id uuid not null,
  key text not null,
  value jsonb not null,
  expires_at timestamptz not null,
  primary key (workspace_id, user_id, key)
)
"""
_UPSERT = """
insert into ui_state (workspace_id, user_id, key, value, expires_at)
values ($1, $2, $3, $4::jsonb, $5)
on conflict (workspace_id, user_id, key)
do update set value = excluded.value, expires_at = excluded.expires_at
"""
_SELECT = """
select value::text, expires_at from ui_state
 where workspace_id = $1 and user_id = $2 and key = $3 and expires_at > now()
"""

Op = Callable[[int, str], Awaitable[object]]


def _percentile(sorted_s: list[float], percent: float) -> float:
    return sorted_s[min(len(sorted_s) - 1, int(len(sorted_s) * percent / 100))] * 1000


async def _closed_loop(name: str, op: Op, seconds: float, concurrency: int) -> Result:
    latencies: list[float] = []

    async def client(index: int, until: float, record: bool) -> None:
        pick = random.Random(index).choice  # noqa: S311 - load shape, not secrets
        while (started := time.perf_counter()) < until:
            await op(index, pick(KEYS))
            if record:
                latencies.append(time.perf_counter() - started)

    for record, duration in ((False, WARMUP_S), (True, seconds)):
        until = time.perf_counter() + duration
        began = time.perf_counter()
        await asyncio.gather(*(client(i, until, record) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return Result(
        name, len(latencies) / elapsed, _percentile(latencies, 50), _percentile(latencies, 99)
    )


async def _store_level(
    redis_url: str, postgres_url: str, seconds: float, concurrency: int
) -> list[Result]:
    tenants = [(uuid.uuid4(), uuid.uuid4()) for _ in range(concurrency)]
    redis = create_redis(redis_url)
    store = RedisUIStateStore(redis)

    def expiry() -> datetime:
        return datetime.now(UTC) + timedelta(days=7)

    async def redis_put(index: int, key: str) -> object:
        return await store.put(UIState(*tenants[index], key, VALUE, expiry()), QUOTA)

    async def redis_get(index: int, key: str) -> object:
        return await store.get(*tenants[index], key)

    pool = await asyncpg.create_pool(postgres_url, min_size=10, max_size=10)
    assert pool is not None
    text = VALUE.decode()

    async def pg_put(index: int, key: str) -> object:
        return await pool.execute(_UPSERT, *tenants[index], key, text, expiry())

    async def pg_get(index: int, key: str) -> object:
        return await pool.fetchrow(_SELECT, *tenants[index], key)

    try:
        await pool.execute(_TABLE)
        for index in range(concurrency):
            for key in KEYS:
                await redis_put(index, key)
                await pg_put(index, key)
        results = []
        for name, op in (
            ("Redis store: read (GET)", redis_get),
            ("Postgres table: read (select by primary key)", pg_get),
            ("Redis store: write (put script)", redis_put),
            ("Postgres table: write (upsert)", pg_put),
        ):
            results.append(await _closed_loop(name, op, seconds, concurrency))
        return results
    finally:
        await pool.close()
        await redis.aclose()


def _wrk(name: str, url: str, script: str, seconds: int, connections: int) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    command = ["wrk", "-t1", f"-c{connections}", "--latency", "-s", file.name, url]
    try:
        subprocess.run([*command[:2], "-d3s", *command[2:]], check=True, capture_output=True)
        output = subprocess.run(
            [*command[:2], f"-d{seconds}s", *command[2:]],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        Path(file.name).unlink()
    if "Non-2xx" in output:
        raise SystemExit(f"{name}: non-2xx answers\n{output}")

    def latency(percent: str) -> float:
        found = next(
            line.split()[1] for line in output.splitlines() if line.strip().startswith(percent)
        )
        number = found.rstrip("usm")
        return float(number) * _UNITS[found[len(number) :]]

    rate = next(line for line in output.splitlines() if line.startswith("Requests/sec:"))
    return Result(name, float(rate.split()[1]), latency("50%"), latency("99%"))


def _script(method: str, token: str, keys_path: str, body: bytes | None) -> str:
    """A wrk script: every request picks one of KEYS under `keys_path`."""
    keys = ", ".join(f'"{key}"' for key in KEYS)
    lines = [
        f'wrk.method = "{method}"',
        f'wrk.headers["Authorization"] = "Bearer {token}"',
        f"local keys = {{{keys}}}",
        "request = function()",
        f'  return wrk.format(nil, "{keys_path}/" .. keys[math.random(#keys)])',
        "end",
    ]
    if body is not None:
        lines.insert(2, f"wrk.body = {msgspec.json.encode(body.decode()).decode()}")
        lines.insert(3, 'wrk.headers["Content-Type"] = "application/json"')
    return "\n".join(lines)


def _http_level(env: dict[str, str], seconds: int, connections: int) -> list[Result]:
    user = uuid.uuid4()
    token = issue_token(SECRET, "authenticated", user)
    headers = {"Authorization": f"Bearer {token}"}
    with _server("entrypoints.http.asgi:app", env) as base:
        workspace = httpx.post(
            f"{base}/v1/workspaces", json={"name": "bench"}, headers=headers
        ).json()["id"]
        path = f"/v1/workspaces/{workspace}/ui-state"
        for key in KEYS:
            put = httpx.put(f"{base}{path}/{key}", content=VALUE, headers=headers)
            assert put.status_code == 200, put.text
        return [
            _wrk(
                f"HTTP {method} ui-state/{{key}} (Redis)",
                f"{base}{path}",
                _script(method, token, path, body),
                seconds,
                connections,
            )
            for method, body in (("GET", None), ("PUT", VALUE))
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    keel_db, role = f"keel_bench_{suffix}", f"keel_bench_rt_{suffix}"
    scratch = f"keel_bench_ui_{suffix}"
    with test_services() as services:
        try:
            asyncio.run(ensure_database(services.postgres_url, scratch))
            results = asyncio.run(
                _store_level(
                    services.redis_url,
                    with_database(services.postgres_url, scratch),
                    args.seconds,
                    args.concurrency,
                )
            )
            runtime = asyncio.run(
                _provision(services.postgres_url, keel_db, role, secrets.token_hex(8))
            )
            env = {
                "KEEL_DATABASE_URL": runtime,
                "KEEL_REDIS_URL": services.redis_url,
                "KEEL_JWT_SECRET": SECRET,
            }
            results += _http_level(env, args.seconds, args.concurrency)
        finally:
            for database in (scratch, keel_db):
                asyncio.run(drop_database(services.postgres_url, database))
            asyncio.run(drop_role(services.postgres_url, role))
    print(
        f"\n{args.concurrency} concurrent clients, {args.seconds} s each,"
        f" value {len(VALUE)} bytes, services: {services.origin}\n"
    )
    print("| operation | ops/s | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    for result in results:
        print(
            f"| {result.name} | {result.requests_per_s:,.0f} | {result.p50_ms:.2f} |"
            f" {result.p99_ms:.2f} |"
        )


if __name__ == "__main__":
    main()
