"""Postgres failing under agents' load (run with `pytest -m slow -s tests/faults`).

The app's connections are terminated by the server, black-holed, or reset
by the proxy while agents work. Any request may fail then, but only with a
503 and Retry-After, never a 500; no task is lost, each ends exactly once,
and Keel recovers without a restart (tests/faults/scenario.py).
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from tests.faults.load import OPERATIONS
from tests.faults.scenario import Stack, repeated, under_load

pytestmark = pytest.mark.slow

FAULT_S = 4.0
EVERY_S = 0.7

_TERMINATE = sa.text(
    "select count(pg_terminate_backend(pid)) from pg_stat_activity where usename = :role"
)


async def test_backends_terminated(system: Stack) -> None:
    terminated = 0

    async def terminate() -> None:
        nonlocal terminated
        async with system.owner.connect() as conn:
            role = system.database.runtime_role
            terminated += int((await conn.execute(_TERMINATE, {"role": role})).scalar_one())

    await under_load(
        system,
        "postgres backends terminated",
        lambda: repeated(FAULT_S, EVERY_S, terminate),
        OPERATIONS,
    )
    assert terminated > 0, "no backend of the app was terminated"


async def test_black_holed(system: Stack) -> None:
    async def black_hole() -> None:
        system.postgres.black_hole()
        await asyncio.sleep(FAULT_S)

    await under_load(system, "postgres black-holed", black_hole, OPERATIONS)


async def test_connections_reset(system: Stack) -> None:
    async def reset() -> None:
        system.postgres.reset()

    await under_load(
        system, "postgres connections reset", lambda: repeated(FAULT_S, EVERY_S, reset), OPERATIONS
    )


async def test_partitioned(system: Stack) -> None:
    """The open connections are cut silently (the server's host gone, a
    failover to another address); new connections work once healed."""

    async def partition() -> None:
        system.postgres.partition()
        await asyncio.sleep(FAULT_S)

    await under_load(system, "postgres partitioned", partition, OPERATIONS)
