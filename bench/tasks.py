"""Task pipeline throughput and pickup latency, beside a bare BullMQ worker.

    .venv/bin/python -m bench.tasks [--tasks 4000] [--concurrency 16,64,128]

Services as in bench.cache. Keel workers are `keel worker --concurrency N`
processes with a zero-latency simulated model (24 tokens, no pause); tasks
are inserted in bulk as committed outbox rows (what the API writes), so the
number is the worker side: relay, BullMQ, claim, model, progress, result.
The ceiling: a bare bullmq worker doing nothing, at the same concurrency,
in the same run. Each concurrency runs the bare worker and one Keel process;
four Keel processes run at the first concurrency each.
Pickup latency: with idle workers, tasks are created one at a time through
the API, and `started_at - created_at` is read back from Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import sqlalchemy as sa
from bullmq import Queue, Worker

from adapters.postgres.database import create_engine
from adapters.postgres.provisioning import drop_database, drop_role, with_database
from bench.cache import SECRET, _provision, _server
from entrypoints.devstack.services import test_services
from entrypoints.http.auth import issue_token


async def _bare_bullmq(redis_url: str, jobs: int, concurrency: int) -> float:
    prefix = "{bench-" + uuid.uuid4().hex[:8] + "}"
    queue = Queue("noop", {"connection": redis_url, "prefix": prefix})
    await queue.addBulk(
        [{"name": "n", "data": {"i": i}, "opts": {"removeOnComplete": True}} for i in range(jobs)]
    )
    done = asyncio.Event()
    count = 0

    async def process(_job: Any, _token: str) -> None:
        nonlocal count
        count += 1
        if count == jobs:
            done.set()

    started = time.perf_counter()
    worker = Worker(
        "noop", process, {"connection": redis_url, "prefix": prefix, "concurrency": concurrency}
    )
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    await worker.close()
    await queue.obliterate(force=True)
    await queue.close()
    return jobs / elapsed


async def _keel_throughput(
    owner_url: str,
    env: dict[str, str],
    workers: int,
    concurrency: int,
    tasks: int,
    workspace: str,
    user: str,
) -> float:
    engine = create_engine(owner_url, pool_size=2)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "worker", "--concurrency", str(concurrency)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        await asyncio.sleep(3)
        batch = uuid.uuid4().hex[:6]
        started = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "insert into tasks (workspace_id, id, kind, input, created_by)"
                    " select cast(:w as uuid), gen_random_uuid(), 'summarize',"
                    " jsonb_build_object('text', :b || ' ' || g), cast(:u as uuid)"
                    " from generate_series(1, :n) g"
                ),
                {"w": workspace, "u": user, "n": tasks, "b": batch},
            )
            await conn.execute(sa.text("select pg_notify('keel_tasks', '')"))
        while True:
            async with engine.connect() as conn:
                left = await conn.scalar(
                    # By the (workspace, status) index: this poll must not scan
                    # every task row (earlier runs' too) while workers run.
                    sa.text(
                        "select count(*) from tasks where workspace_id = cast(:w as uuid)"
                        " and status in ('queued', 'running') and input->>'text' like :b"
                    ),
                    {"w": workspace, "b": f"{batch} %"},
                )
            if not left:
                break
            await asyncio.sleep(0.05)
        return tasks / (time.perf_counter() - started)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--pickups", type=int, default=100)
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[16, 64, 128],
        help="comma-separated concurrencies per process (default 16,64,128)",
    )
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    name, role, password = f"keel_bench_{suffix}", f"keel_bench_rt_{suffix}", secrets.token_hex(8)
    with test_services() as services:
        runtime = asyncio.run(_provision(services.postgres_url, name, role, password))
        owner_url = with_database(services.postgres_url, name)
        prefix = "{bench-" + suffix + "}"
        env = {
            "KEEL_DATABASE_URL": runtime,
            "KEEL_REDIS_URL": services.redis_url,
            "KEEL_JWT_SECRET": SECRET,
            "KEEL_SIM_TOKEN_DELAY_MS": "0",
            "KEEL_QUEUE_PREFIX": prefix,
            "KEEL_WORKSPACE_MAX_RUNNING": "1000",
            "KEEL_TASK_RATE_PER_MINUTE": "100000",
            "KEEL_LOG_LEVEL": "WARNING",
        }
        user = uuid.uuid4()
        headers = {"Authorization": f"Bearer {issue_token(SECRET, 'authenticated', user)}"}
        try:
            with _server("entrypoints.http.asgi:app", env) as base:
                workspace = httpx.post(
                    f"{base}/v1/workspaces", json={"name": "bench"}, headers=headers
                ).json()["id"]
                rows = []
                for concurrency in args.concurrency:
                    bare = asyncio.run(_bare_bullmq(services.redis_url, args.tasks, concurrency))
                    one = asyncio.run(
                        _keel_throughput(
                            owner_url, env, 1, concurrency, args.tasks, workspace, str(user)
                        )
                    )
                    rows.append((concurrency, bare, one))
                four = asyncio.run(
                    _keel_throughput(
                        owner_url, env, 4, args.concurrency[0], args.tasks, workspace, str(user)
                    )
                )
                latencies = asyncio.run(
                    _pickups(base, headers, workspace, owner_url, env, args.pickups)
                )
        finally:
            asyncio.run(drop_database(services.postgres_url, name))
            asyncio.run(drop_role(services.postgres_url, role))
    p50 = statistics.median(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"\n{args.tasks} tasks (jobs) per run, services: {services.origin}\n")
    print("| concurrency | bare bullmq worker, no-op jobs/s | Keel, 1 process, tasks/s |")
    print("|---:|---:|---:|")
    for concurrency, bare, one in rows:
        print(f"| {concurrency} | {bare:,.0f} | {one:,.0f} ({one / bare:.0%}) |")
    print(f"\nKeel, 4 processes x {args.concurrency[0]}: {four:,.0f} tasks/s")
    best_bare, best_one = max(row[1] for row in rows), max(row[2] for row in rows)
    print(f"Keel (1 process, best) / bare bullmq (best): {best_one / best_bare:.0%}")
    print(
        f"pickup latency (created → started, idle workers, {len(latencies)} tasks):"
        f" p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


async def _pickups(
    base: str,
    headers: dict[str, str],
    workspace: str,
    owner_url: str,
    env: dict[str, str],
    count: int,
) -> list[float]:
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "worker", "--concurrency", "4"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    engine = create_engine(owner_url, pool_size=2)
    ids = []
    try:
        await asyncio.sleep(3)
        async with httpx.AsyncClient(base_url=base, headers=headers) as client:
            for i in range(count):
                response = await client.post(
                    f"/v1/workspaces/{workspace}/tasks",
                    json={"kind": "summarize", "input": {"text": f"pickup {i} {uuid.uuid4()}"}},
                )
                ids.append(response.json()["id"])
                await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "select extract(epoch from started_at - created_at) * 1000 from tasks"
                    " where id = any(cast(:ids as uuid[])) and started_at is not null"
                ),
                {"ids": ids},
            )
            return [float(value) for (value,) in rows]
    finally:
        process.terminate()
        process.wait(60)
        await engine.dispose()


if __name__ == "__main__":
    main()
