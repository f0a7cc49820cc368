"""Issue 17, class 1: a stored value Keel cannot carry poisons nothing.

Rows written before Keel's JSON was enforced (here: by SQL, as the schema's
owner) may hold numbers past 64 bits, numbers too long to read, or nesting
too deep to decode. A read of such a document is a clear, final 409 problem
(never a 500), every time, until the document is rewritten; a task that
reads the workspace's foundation fails once, with a reason that names the
document, and gives its running slot back at once (no crash, no retry loop,
no slot held until a lease lapses).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clock import SystemClock
from adapters.models.simulated import SimulatedModel
from adapters.postgres.task_states import PgTaskStates
from adapters.postgres.uow import PgUnitOfWorkFactory
from adapters.redis.cache import RedisCache
from application.run_task import RunnerSettings, RunTask
from domain.attempts import Outcome
from domain.cache import CacheKey
from domain.entities import TaskRef
from domain.errors import UnreadableValueError
from domain.ports import Cache
from tests.conftest import People, Person
from tests.fakes import RecordedEvents

DOC = {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}, "tags": []}

POISON = {
    "past uint64": '{"n": 18446744073709551616}',
    "past int64 below": '{"n": -9223372036854775809}',
    "a float stored as a long integer": '{"n": 1e400}',
    "too many digits to read": '{"n": 1e5000}',
    "nested in a list": '{"a": [1, {"b": 123456789012345678901234567890}]}',
    "too deep to decode": '{"a": ' + "[" * 3000 + "]" * 3000 + "}",
}


async def _poisoned(
    client: httpx.AsyncClient, people: People, owner_engine: AsyncEngine, content: str
) -> tuple[Person, str, str]:
    """A workspace with one document whose content was rewritten by SQL to `content`."""
    owner = await people.new()
    workspace = await people.workspace(owner)
    document = await people.document(workspace, owner, DOC)
    async with owner_engine.begin() as conn:
        await conn.execute(
            sa.text("update foundation_documents set content = cast(:c as jsonb) where id = :d"),
            {"c": content, "d": uuid.UUID(document)},
        )
    return owner, str(workspace), document


@pytest.mark.parametrize("content", POISON.values(), ids=POISON.keys())
async def test_reading_a_document_keel_cannot_carry_is_a_409_every_time_until_rewritten(
    client: httpx.AsyncClient, people: People, owner_engine: AsyncEngine, content: str
) -> None:
    owner, workspace, document = await _poisoned(client, people, owner_engine, content)
    one = f"/v1/workspaces/{workspace}/foundation/{document}"
    for _ in range(3):  # the first read fills the cache, later ones peek at it
        read = await client.get(one, headers=owner.headers)
        assert read.status_code == 409, read.text
        assert read.headers["content-type"] == "application/problem+json"
        assert document in read.json()["detail"]
    listed = await client.get(f"/v1/workspaces/{workspace}/foundation", headers=owner.headers)
    assert listed.status_code in (200, 409), listed.text
    rewritten = await client.patch(one, json={"content": {"n": 1}}, headers=owner.headers)
    assert rewritten.status_code == 200, rewritten.text
    read = await client.get(one, headers=owner.headers)
    assert (read.status_code, read.json()["content"]) == (200, {"n": 1})


def _runner(engine: AsyncEngine, cache: Cache) -> RunTask:
    return RunTask(
        PgUnitOfWorkFactory(engine),
        PgTaskStates(engine),
        cache,
        SimulatedModel(0),
        RecordedEvents(),
        RunnerSettings(max_running_per_workspace=1),
        SystemClock(),
    )


async def _task_row(owner_engine: AsyncEngine, task_id: str) -> Any:
    async with owner_engine.connect() as conn:
        return (
            await conn.execute(
                sa.text(
                    "select status, attempts, error, lease_expires_at from tasks where id = :t"
                ),
                {"t": uuid.UUID(task_id)},
            )
        ).one()


@pytest.mark.parametrize("content", POISON.values(), ids=POISON.keys())
async def test_a_task_reading_it_fails_once_with_the_reason_and_frees_its_slot(
    client: httpx.AsyncClient,
    people: People,
    owner_engine: AsyncEngine,
    engine: AsyncEngine,
    cache: Cache,
    content: str,
) -> None:
    owner, workspace, document = await _poisoned(client, people, owner_engine, content)
    tasks = f"/v1/workspaces/{workspace}/tasks"
    generate = {"kind": "generate", "input": {"prompt": "A tagline"}, "max_attempts": 5}
    first = (await client.post(tasks, json=generate, headers=owner.headers)).json()["id"]
    runner = _runner(engine, cache)
    ref = TaskRef(uuid.UUID(workspace), uuid.UUID(first), owner.id)

    assert (await runner.execute(ref)).outcome is Outcome.FAILED
    row = await _task_row(owner_engine, first)
    assert (row.status, row.attempts, row.lease_expires_at) == ("failed", 1, None)
    assert document in row.error
    assert "stopped answering" not in row.error

    # The workspace runs at most one task at once: the slot is free again.
    summary = {"kind": "summarize", "input": {"text": "Keel runs agents."}}
    second = (await client.post(tasks, json=summary, headers=owner.headers)).json()["id"]
    ref = TaskRef(uuid.UUID(workspace), uuid.UUID(second), owner.id)
    assert (await runner.execute(ref)).outcome is Outcome.SUCCEEDED


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


UNCACHEABLE = {
    "past uint64": {"n": 2**64},
    "past int64 below": {"n": -(2**63) - 1},
    "long integer": {"a": [1, {"b": 10**30}]},
    "too deep for msgpack": {"a": _deep(5000)},
}


@pytest.mark.parametrize("value", UNCACHEABLE.values(), ids=UNCACHEABLE.keys())
async def test_the_cache_refuses_a_value_it_cannot_carry_and_keeps_no_lock(
    cache: RedisCache, redis: Redis, value: dict[str, Any]
) -> None:
    key = CacheKey(uuid.uuid4(), "test-uncacheable", "one")
    loads = 0

    async def loader() -> dict[str, Any]:
        nonlocal loads
        loads += 1
        return value

    for _ in range(2):
        with pytest.raises(UnreadableValueError, match="cannot be cached"):
            await cache.get_or_set(key, loader, type_=dict, ttl_s=60)
    assert loads == 2, "nothing was stored: each read loads again"
    assert await redis.keys(f"*{key.workspace_id}*lock*") == []


TASK_POISON = {
    "too many digits to read": '{"text": "x", "n": 1e5000}',
    "too deep to decode": '{"text": "x", "a": ' + "[" * 3000 + "]" * 3000 + "}",
}


@pytest.mark.parametrize("stored", TASK_POISON.values(), ids=TASK_POISON.keys())
async def test_a_task_whose_own_input_cannot_be_read_fails_once_and_frees_its_slot(
    client: httpx.AsyncClient,
    people: People,
    owner_engine: AsyncEngine,
    engine: AsyncEngine,
    cache: Cache,
    stored: str,
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    tasks = f"/v1/workspaces/{workspace}/tasks"
    summary = {"kind": "summarize", "input": {"text": "Keel runs agents."}}
    first = (await client.post(tasks, json=summary, headers=owner.headers)).json()["id"]
    async with owner_engine.begin() as conn:
        await conn.execute(
            sa.text("update tasks set input = cast(:i as jsonb) where id = :t"),
            {"i": stored, "t": uuid.UUID(first)},
        )
    read = await client.get(f"{tasks}/{first}", headers=owner.headers)
    assert read.status_code == 409, read.text
    assert first in read.json()["detail"]

    runner = _runner(engine, cache)
    ran = await runner.execute(TaskRef(workspace, uuid.UUID(first), owner.id))
    assert ran.outcome is Outcome.FAILED
    row = await _task_row(owner_engine, first)
    assert (row.status, row.attempts, row.lease_expires_at) == ("failed", 1, None)
    assert first in row.error

    second = (await client.post(tasks, json=summary, headers=owner.headers)).json()["id"]
    ref = TaskRef(workspace, uuid.UUID(second), owner.id)
    assert (await runner.execute(ref)).outcome is Outcome.SUCCEEDED
