"""Redis failing under agents' load (run with `pytest -m slow -s tests/faults`).

On a Redis of the module's own (tests/faults/conftest.py):
stopped (it comes back empty), its connections reset, paused (`CLIENT
PAUSE`), black-holed, flushed and slowed down while agents work. Foundation reads fall
back to Postgres and task creation still answers 202 throughout; what lives
only in Redis (UI state, event streams) may answer 503 with Retry-After.
Workers and streams recover, and every task ends exactly once
(tests/faults/scenario.py).
"""

from __future__ import annotations

import asyncio

import pytest

from adapters.redis.client import create_redis
from entrypoints.devstack.redis import EmbeddedRedis
from tests.faults.scenario import Stack, repeated, under_load

pytestmark = pytest.mark.slow

FAULT_S = 3.0
EVERY_S = 0.5
MAY_FAIL = ("ui_put", "ui_get", "stream")  # Redis is their only store


async def _direct(server: EmbeddedRedis, command: str, *args: object) -> None:
    """A command sent to the server itself, not through the proxy."""
    client = create_redis(server.url)
    try:
        await client.execute_command(command, *args)
    finally:
        await client.aclose()


async def test_stopped_and_back_empty(system: Stack, own_redis: EmbeddedRedis) -> None:
    async def stop() -> None:
        own_redis.stop()
        try:
            await asyncio.sleep(FAULT_S)
        finally:
            own_redis.start()

    await under_load(system, "redis stopped, back empty", stop, MAY_FAIL)


async def test_connections_reset(system: Stack) -> None:
    async def reset() -> None:
        system.redis.reset()

    await under_load(
        system, "redis connections reset", lambda: repeated(FAULT_S, EVERY_S, reset), MAY_FAIL
    )


async def test_paused(system: Stack, own_redis: EmbeddedRedis) -> None:
    async def pause() -> None:
        await _direct(own_redis, "CLIENT", "PAUSE", int(FAULT_S * 1000), "ALL")
        await asyncio.sleep(FAULT_S)

    await under_load(system, "redis paused", pause, MAY_FAIL)


async def test_black_holed(system: Stack) -> None:
    async def black_hole() -> None:
        system.redis.black_hole()
        await asyncio.sleep(FAULT_S)

    await under_load(system, "redis black-holed", black_hole, MAY_FAIL)


async def test_flushed(system: Stack, own_redis: EmbeddedRedis) -> None:
    async def flush() -> None:
        await _direct(own_redis, "FLUSHALL")
        await asyncio.sleep(FAULT_S)
        await _direct(own_redis, "FLUSHALL")

    await under_load(system, "redis flushed", flush, MAY_FAIL)


async def test_slow(system: Stack) -> None:
    """Slower than the cache's timeout (50 ms): reads are answered by Postgres."""

    async def slow() -> None:
        system.redis.latency_s = 0.2
        try:
            await asyncio.sleep(FAULT_S)
        finally:
            system.redis.latency_s = 0

    await under_load(system, "redis slow (200 ms a chunk)", slow, MAY_FAIL)


async def test_partitioned(system: Stack) -> None:
    """The open connections are cut silently for good (a host gone); new
    connections work once healed."""

    async def partition() -> None:
        system.redis.partition()
        await asyncio.sleep(FAULT_S)

    await under_load(system, "redis partitioned", partition, MAY_FAIL)
