"""What the database says happened to a batch of tasks, and the one report line
every fault scenario prints.

The tasks' rows and their attempt history are read with the schema owner's
engine (no row-level security), so a scenario sees every task it created,
whatever workspace it is in.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

FINAL = ("succeeded", "failed", "cancelled")

_STATES = sa.text(
    "select status, count(*) from tasks where id = any(cast(:ids as uuid[])) group by status"
)
_RUNNING = sa.text(
    "select id::text from tasks where id = any(cast(:ids as uuid[])) and status = 'running'"
)
# One row per task: its state, and what its attempt history says happened.
_OUTCOMES = sa.text(
    """
    select t.id::text as id, t.status, t.attempts, t.result is not null as has_result,
           count(a.id) filter (where a.outcome = 'succeeded') as wins,
           count(a.id) filter (where a.outcome = 'started') as starts,
           count(a.id) filter (where a.outcome = 'lost') as lost
      from tasks t
      left join task_attempts a on a.workspace_id = t.workspace_id and a.task_id = t.id
     where t.id = any(cast(:ids as uuid[]))
     group by t.workspace_id, t.id
    """
)

# A workspace and its owner's membership are one transaction: never one alone.
_OWNERLESS = sa.text(
    """
    select count(*) from workspaces w
     where w.created_by = any(cast(:users as uuid[]))
       and not exists (select 1 from memberships m
                        where m.workspace_id = w.id and m.user_id = w.created_by
                          and m.role = 'owner')
    """
)


@dataclass(frozen=True)
class Outcome:
    id: str
    status: str
    attempts: int
    has_result: bool
    wins: int
    starts: int
    lost: int


async def states(owner_engine: AsyncEngine, ids: list[str]) -> Counter[str]:
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(_STATES, {"ids": ids})).all()
    return Counter({str(status): int(count) for status, count in rows})


async def running(owner_engine: AsyncEngine, ids: list[str]) -> set[str]:
    async with owner_engine.connect() as conn:
        return set((await conn.execute(_RUNNING, {"ids": ids})).scalars())


async def outcomes(owner_engine: AsyncEngine, ids: list[str]) -> list[Outcome]:
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(_OUTCOMES, {"ids": ids})).all()
    return [Outcome(**row._asdict()) for row in rows]


async def ownerless_workspaces(owner_engine: AsyncEngine, users: list[str]) -> int:
    """Workspaces these users created that have no owner: a half-done write."""
    async with owner_engine.connect() as conn:
        return int((await conn.execute(_OWNERLESS, {"users": users})).scalar_one())


def final(counts: Counter[str]) -> int:
    return sum(counts[status] for status in FINAL)


async def settled(owner_engine: AsyncEngine, ids: list[str], timeout_s: float) -> Counter[str]:
    """The tasks' states once every one is final, or when `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = await states(owner_engine, ids)
        if final(counts) == len(ids) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.25)


async def wait_all_final(
    owner_engine: AsyncEngine,
    ids: list[str],
    timeout_s: float,
    describe: Callable[[], str] = str,
) -> Counter[str]:
    """Wait until every task is final; `describe()` adds to the failure message."""
    counts = await settled(owner_engine, ids, timeout_s)
    assert final(counts) == len(ids), (
        f"not every task is final after {timeout_s:.0f} s: {dict(counts)}\n{describe()}"
    )
    return counts


def check_integrity(found: list[Outcome], ids: list[str], context: str) -> None:
    """Nothing lost, nothing unfinished, never two results."""
    assert sorted(o.id for o in found) == sorted(ids), f"tasks lost\n{context}"
    unfinished = [o for o in found if o.status not in FINAL]
    assert not unfinished, f"tasks not final: {unfinished[:5]}\n{context}"
    doubled = [o for o in found if o.wins > 1]
    assert not doubled, f"tasks with two results: {doubled[:5]}\n{context}"
    unrecorded = [
        o for o in found if o.status == "succeeded" and (o.wins, o.has_result) != (1, True)
    ]
    assert not unrecorded, (
        f"succeeded without exactly one recorded result: {unrecorded[:5]}\n{context}"
    )
    stray = [o for o in found if o.status != "succeeded" and o.wins]
    assert not stray, f"a success recorded for a task that did not succeed: {stray[:5]}\n{context}"
    # Each claim increments `attempts` and writes one 'started' row in the same transaction.
    uncounted = [o for o in found if o.starts != o.attempts]
    assert not uncounted, f"attempts and attempt history disagree: {uncounted[:5]}\n{context}"


def summary(
    scenario: str,
    requests: int,
    errors: Mapping[int, int],
    created: int,
    ended: int,
    events: str,
) -> str:
    """One line of the fault report (`pytest -m slow -s tests/faults`)."""
    shown = ", ".join(f"{status}: {n}" for status, n in sorted(errors.items())) or "none"
    return (
        f"FAULT {scenario:<32} requests {requests:>5} | errors {shown} | "
        f"tasks {created} created, {ended} ended, {created - ended} lost | "
        f"events {events}"
    )
