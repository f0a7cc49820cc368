"""What the system did during a phase, read before and after it.

Cache reads from each process's Prometheus endpoint
(`keel_cache_requests_total`), Redis commands from `INFO commandstats`,
Postgres statements from pg_stat_statements and transactions from
pg_stat_database, and the CPU time of every process by pid (Postgres: the
postmaster and its backends; Redis: the pid `INFO server` names). These are
only read here; their difference over a phase, divided by its agent steps,
is the cost of one step.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import psutil
import redis
from prometheus_client.parser import text_string_to_metric_families

from adapters.postgres.database import async_url
from bench.agents.system import Stack, Target

CACHE_METRIC = "keel_cache_requests"


def _cache_reads(urls: list[str]) -> dict[str, float]:
    """`namespace/result` → reads, summed over every process."""
    found: dict[str, float] = {}
    for url in urls:
        text = httpx.get(url, timeout=10).text
        for family in text_string_to_metric_families(text):
            if family.name != CACHE_METRIC:
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = f"{sample.labels['namespace']}/{sample.labels['result']}"
                    found[key] = found.get(key, 0.0) + sample.value
    return found


def _redis(url: str) -> tuple[dict[str, float], int]:
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
        commands = {
            k.removeprefix("cmdstat_"): float(v["calls"])
            for k, v in stats.items()
            if k != "cmdstat_info"
        }
        return commands, int(client.info("server")["process_id"])
    finally:
        client.close()


async def _postgres(url: str) -> tuple[float | None, float, int | None]:
    conn = await asyncpg.connect(async_url(url).replace("+asyncpg", ""))
    try:
        statements = None
        try:
            await conn.execute("create extension if not exists pg_stat_statements")
            statements = await conn.fetchval(
                "select coalesce(sum(calls), 0) from pg_stat_statements"
                " where dbid = (select oid from pg_database where datname = current_database())"
            )
        except asyncpg.PostgresError:
            statements = None
        transactions = await conn.fetchval(
            "select xact_commit + xact_rollback from pg_stat_database"
            " where datname = current_database()"
        )
        backend = await conn.fetchval("select pg_backend_pid()")
        try:  # the postmaster: this backend's parent, while it lives (a local server only)
            postmaster: int | None = psutil.Process(backend).ppid()
        except psutil.Error:
            postmaster = None
        counted = None if statements is None else float(statements)
        return counted, float(transactions), postmaster
    finally:
        await conn.close()


def _cpu_s(pid: int, children: bool = False) -> float:
    """User and system CPU seconds of `pid` (and of its children); 0 when not ours to read."""
    try:
        process = psutil.Process(pid)
        processes = [process, *(process.children() if children else [])]
        total = 0.0
        for each in processes:
            try:
                times = each.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
        return total
    except psutil.Error:
        return 0.0


@dataclass
class Reading:
    cache: dict[str, float]
    redis_commands: dict[str, float]
    pg_statements: float | None
    pg_transactions: float | None
    cpu_s: dict[str, list[float]] = field(default_factory=dict)
    machine_busy_s: float = 0.0  # every core's non-idle time, every process's (others' too)
    at: float = 0.0  # when the CPU times were read (monotonic)


def read(stack: Stack, target: Target) -> Reading:
    commands, redis_pid = _redis(target.redis_url)
    statements = transactions = None
    postmaster = None
    if target.owner_url:
        statements, transactions, postmaster = asyncio.run(_postgres(target.owner_url))
    at = time.monotonic()
    cpu = {kind: [_cpu_s(pid) for pid in pids] for kind, pids in stack.pids.items()}
    cpu["redis"] = [_cpu_s(redis_pid)]
    if postmaster:
        cpu["postgres"] = [_cpu_s(postmaster, children=True)]
    times = psutil.cpu_times()._asdict()  # guest time is inside user time: not added twice
    busy = sum(times.get(k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))
    cache = _cache_reads(stack.metrics)
    return Reading(cache, commands, statements, transactions, cpu, busy, at)


def difference(before: Reading, after: Reading, steps: int) -> dict[str, Any]:
    """The phase's cache reads, round trips per step and CPU (% of one core) per process kind."""
    cache = {k: after.cache.get(k, 0.0) - before.cache.get(k, 0.0) for k in after.cache}
    hits = sum(v for k, v in cache.items() if k.endswith("/hit"))
    failed = sum(v for k, v in cache.items() if k.endswith("/error"))
    reads = sum(cache.values())

    def per_step(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or not steps else (b - a) / steps

    commands = {
        name: calls - before.redis_commands.get(name, 0.0)
        for name, calls in after.redis_commands.items()
    }
    top = sorted(commands.items(), key=lambda item: -item[1])[:6]

    seconds = after.at - before.at
    cpu = {
        kind: [
            100 * (end - start) / seconds
            for start, end in zip(before.cpu_s.get(kind, []), values, strict=False)
        ]
        for kind, values in after.cpu_s.items()
    }
    return {
        "cache_reads": {k: v for k, v in sorted(cache.items()) if v},
        "cache_hit_ratio": hits / reads if reads else None,
        "cache_read_errors": failed,
        "redis_commands_per_step": per_step(0.0, sum(commands.values())),
        "redis_top_commands_per_step": {
            name: calls / steps for name, calls in top if steps and calls
        },
        "postgres_statements_per_step": per_step(before.pg_statements, after.pg_statements),
        "postgres_transactions_per_step": per_step(before.pg_transactions, after.pg_transactions),
        "cpu_percent": cpu,
        "machine_cpu_percent": 100 * (after.machine_busy_s - before.machine_busy_s) / seconds,
    }
