"""Batched claims, heartbeats and finishes (migrations 0007 and 0008,
adapters/postgres/task_states.py)
against the real Postgres, as the worker's restricted role: tasks of several
tenants in one call each stay in their own tenant context, a task named with
another tenant's context is untouched, duplicates and failures stay with
their own caller, and nothing of the batch's role or variables outlives it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.task_states import PgTaskStates
from domain.entities import Claim, ClaimRefused, Lease, TaskRef, TaskStatus
from tests.conftest import People


async def _new_task(owner_engine: AsyncEngine, workspace: uuid.UUID, creator: uuid.UUID) -> TaskRef:
    task = uuid.uuid4()
    async with owner_engine.begin() as conn:
        await conn.execute(
            sa.text(
                "insert into tasks (workspace_id, id, kind, input, created_by, dispatched_at)"
                " values (:w, :t, 'summarize', '{\"text\": \"x\"}', :u, now())"
            ),
            {"w": workspace, "t": task, "u": creator},
        )
    return TaskRef(workspace, task, creator)


async def _read(owner_engine: AsyncEngine, ref: TaskRef, columns: str) -> tuple[object, ...]:
    async with owner_engine.connect() as conn:
        row = await conn.execute(
            sa.text(f"select {columns} from tasks t where t.id = :t"), {"t": ref.task_id}
        )
        return tuple(row.one())


async def _row(owner_engine: AsyncEngine, ref: TaskRef) -> tuple[object, ...]:
    """Status, attempts, result, and how many attempt-history rows."""
    return await _read(
        owner_engine,
        ref,
        "t.status, t.attempts, t.result,"
        " (select count(*) from task_attempts a where a.task_id = t.id)",
    )


async def _lease(owner_engine: AsyncEngine, ref: TaskRef) -> tuple[object, ...]:
    """Progress, and the seconds left on the lease."""
    return await _read(
        owner_engine, ref, "t.progress, round(extract(epoch from t.lease_expires_at - now()))"
    )


class _Recorded(PgTaskStates):
    """The real adapter, remembering the statements it sent."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.queries: list[str] = []

    async def _call(self, query: str, *args: Any) -> list[Any]:
        self.queries.append(query)
        return await super()._call(query, *args)


@pytest.fixture
async def tenants(people: People, owner_engine: AsyncEngine) -> dict[str, TaskRef]:
    owner_a, owner_b = await people.new(), await people.new()
    workspace_a, workspace_b = await people.workspace(owner_a), await people.workspace(owner_b)
    return {
        "a1": await _new_task(owner_engine, workspace_a, owner_a.id),
        "a2": await _new_task(owner_engine, workspace_a, owner_a.id),
        "b1": await _new_task(owner_engine, workspace_b, owner_b.id),
    }


async def _all_running(
    states: PgTaskStates, tenants: dict[str, TaskRef]
) -> tuple[TaskRef, TaskRef, TaskRef]:
    """The three tasks, claimed (attempt 1)."""
    a1, a2, b1 = tenants["a1"], tenants["a2"], tenants["b1"]
    await asyncio.gather(*(states.claim(ref, 4, 30) for ref in (a1, a2, b1)))
    return a1, a2, b1


async def test_one_batch_claims_each_task_in_its_own_tenant_context(
    engine: AsyncEngine, owner_engine: AsyncEngine, tenants: dict[str, TaskRef]
) -> None:
    states = _Recorded(engine)
    a1, a2, b1 = tenants["a1"], tenants["a2"], tenants["b1"]
    # Forged references (A's task named with B's workspace and owner, B's task
    # with A's context) in one batch with a real claim.
    forged = [
        TaskRef(b1.workspace_id, a2.task_id, b1.created_by),
        TaskRef(a1.workspace_id, b1.task_id, a1.created_by),
    ]
    answers = await asyncio.gather(*(states.claim(ref, 4, 30) for ref in [*forged, a1]))
    assert answers[:2] == [ClaimRefused.NOTHING] * 2, "a forged reference claims nothing"
    assert await _row(owner_engine, a2) == ("queued", 0, None, 0)
    assert await _row(owner_engine, b1) == ("queued", 0, None, 0)
    # The real ones, of both tenants, in the next batch.
    answers += await asyncio.gather(states.claim(b1, 4, 30), states.claim(a2, 4, 30))
    assert [query.split("(")[0] for query in states.queries] == [
        "select * from keel_worker.claim_tasks"
    ] * 2, "one call per batch"
    for ref, answer in zip([a1, b1, a2], answers[2:], strict=True):
        assert isinstance(answer, Claim), answer
        assert (answer.task.id, answer.task.workspace_id, answer.attempt) == (
            ref.task_id,
            ref.workspace_id,
            1,
        )
        assert await _row(owner_engine, ref) == ("running", 1, None, 1)


async def test_a_task_twice_in_one_batch_is_claimed_once(
    engine: AsyncEngine, owner_engine: AsyncEngine, tenants: dict[str, TaskRef]
) -> None:
    states = PgTaskStates(engine)
    a1, b1 = tenants["a1"], tenants["b1"]
    answers = await asyncio.gather(*(states.claim(ref, 4, 30) for ref in [a1, b1, a1, a1]))
    claims = [answer for answer in answers if isinstance(answer, Claim)]
    assert sorted(claim.task.id for claim in claims) == sorted([a1.task_id, b1.task_id])
    assert answers.count(ClaimRefused.NOTHING) == 2, answers
    assert await _row(owner_engine, a1) == ("running", 1, None, 1)


async def test_the_workspace_cap_holds_inside_one_batch(
    engine: AsyncEngine, owner_engine: AsyncEngine, tenants: dict[str, TaskRef]
) -> None:
    states = PgTaskStates(engine)
    a1, a2 = tenants["a1"], tenants["a2"]
    first, second = await asyncio.gather(states.claim(a1, 1, 30), states.claim(a2, 1, 30))
    # Taken in task order inside the batch: the first claim fills the cap of 1.
    (claimed, waiting) = (a1, a2) if a1.task_id < a2.task_id else (a2, a1)
    answers = {a1.task_id: first, a2.task_id: second}
    assert isinstance(answers[claimed.task_id], Claim), answers
    assert answers[waiting.task_id] is ClaimRefused.BUSY, "the other task of the workspace waits"
    assert await _row(owner_engine, claimed) == ("running", 1, None, 1)
    assert await _row(owner_engine, waiting) == ("queued", 0, None, 0)


async def test_finishes_of_one_batch_are_guarded_each_on_its_own(
    engine: AsyncEngine, owner_engine: AsyncEngine, tenants: dict[str, TaskRef]
) -> None:
    states = PgTaskStates(engine)
    a1, a2, b1 = await _all_running(states, tenants)
    answers = await asyncio.gather(
        states.finish(a1, 1, TaskStatus.SUCCEEDED, result={"text": "a1"}),
        states.finish(a2, 2, TaskStatus.SUCCEEDED, result={"text": "late"}),  # not its attempt
        states.finish(TaskRef(a1.workspace_id, b1.task_id, a1.created_by), 1, TaskStatus.FAILED),
        states.finish(b1, 1, TaskStatus.FAILED, error="boom"),
    )
    assert answers == [True, False, False, True]
    assert await _row(owner_engine, a1) == ("succeeded", 1, {"text": "a1"}, 2)
    assert await _row(owner_engine, a2) == ("running", 1, None, 1)
    assert await _row(owner_engine, b1) == ("failed", 1, None, 2)


async def test_heartbeats_of_one_batch_are_guarded_each_in_its_own_tenant_context(
    engine: AsyncEngine, owner_engine: AsyncEngine, tenants: dict[str, TaskRef]
) -> None:
    states = _Recorded(engine)
    a1, a2, b1 = await _all_running(states, tenants)
    async with owner_engine.begin() as conn:  # a cancel asked for b1
        await conn.execute(
            sa.text("update tasks set cancel_requested = true where id = :t"), {"t": b1.task_id}
        )
    states.queries.clear()
    answers = await asyncio.gather(
        states.heartbeat(a1, 1, 600, 40),
        states.heartbeat(TaskRef(b1.workspace_id, a2.task_id, b1.created_by), 1, 600, 90),
        states.heartbeat(TaskRef(a1.workspace_id, b1.task_id, a1.created_by), 1, 600, 90),
        states.heartbeat(a2, 2, 600, 90),  # not its attempt
        states.heartbeat(b1, 1, 600, 70),
    )
    # one call for the batch; the two tasks named a second time go alone after it
    assert states.queries == [
        "select * from keel_worker.heartbeat_tasks($1, $2, $3, $4, $5, $6)",
        *["select keel_worker.heartbeat_task($1, $2, $3, $4, $5, $6)"] * 2,
    ]
    assert answers == [Lease.HELD, *[Lease.LOST] * 3, Lease.CANCEL_ASKED], "forged or stale: lost"
    assert await _lease(owner_engine, a1) == (40, 600)
    assert await _lease(owner_engine, a2) == (0, 30), "untouched by the forged and stale ones"
    assert await _lease(owner_engine, b1) == (70, 600)


async def test_an_error_in_one_change_fails_only_its_own_caller(
    engine: AsyncEngine, owner_engine: AsyncEngine, tenants: dict[str, TaskRef]
) -> None:
    """A change Postgres refuses (here a status the table's check rejects) must
    not take the other changes of its batch down with it."""
    states = PgTaskStates(engine)
    a1, b1 = tenants["a1"], tenants["b1"]
    await asyncio.gather(states.claim(a1, 4, 30), states.claim(b1, 4, 30))
    bogus = TaskStatus.SUCCEEDED
    object.__setattr__  # noqa: B018 - documents that TaskStatus is an enum, not patched
    answers = await asyncio.gather(
        states._finishes((a1, 1, "bogus", None, None, False)),
        states.finish(b1, 1, bogus, result={"text": "b1"}),
        return_exceptions=True,
    )
    assert isinstance(answers[0], Exception), answers
    assert answers[1] is True
    assert await _row(owner_engine, b1) == ("succeeded", 1, {"text": "b1"}, 2)
    assert await _row(owner_engine, a1) == ("running", 1, None, 1)


async def test_nothing_of_a_batch_outlives_it_on_the_connection(
    engine: AsyncEngine, tenants: dict[str, TaskRef]
) -> None:
    states = PgTaskStates(engine)
    await asyncio.gather(*(states.claim(ref, 4, 30) for ref in tenants.values()))
    # Every pooled connection the batches used is back as the login role, with
    # no tenant variables: a read of a tenant table is refused outright.
    for _ in range(3):
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("select current_user")) != "keel_app"
            assert await conn.scalar(sa.text("select current_setting('app.user_id', true)")) in (
                "",
                None,
            )
            with pytest.raises(sa.exc.DBAPIError):
                await conn.execute(sa.text("select count(*) from tasks"))
