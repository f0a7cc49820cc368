"""The tenant list queries use an index, checked with EXPLAIN on tables large
enough that the planner would rather scan them if it could."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.uow import PgUnitOfWork
from domain.entities import Caller

MEMBERS = 3000


@pytest.fixture(scope="module")
async def crowd(owner_engine: AsyncEngine) -> tuple[uuid.UUID, uuid.UUID]:
    """One workspace with thousands of members, one user in thousands of workspaces."""
    workspace, user = uuid.uuid4(), uuid.uuid4()
    async with owner_engine.begin() as conn:
        await conn.execute(
            sa.text(
                """
                insert into users (id) select cast(:user as uuid) union all
                select gen_random_uuid() from generate_series(1, :n)
                """
            ),
            {"user": user, "n": MEMBERS},
        )
        params = {"ws": workspace, "user": user, "n": MEMBERS}
        for statement in (
            "insert into workspaces (id, name, created_by)"
            " select cast(:ws as uuid), 'crowded', cast(:user as uuid) union all"
            " select gen_random_uuid(), 'w' || g, :user from generate_series(1, :n) g",
            "insert into memberships (workspace_id, user_id, role)"
            " select :ws, id, 'member' from users where id <> :user limit :n",
            "insert into memberships (workspace_id, user_id, role)"
            " select id, :user, case when id = :ws then 'owner' else 'viewer' end"
            " from workspaces where created_by = :user",
        ):
            await conn.execute(sa.text(statement), params)
        for table in ("users", "workspaces", "memberships"):
            await conn.execute(sa.text(f"analyze {table}"))
    return workspace, user


async def _plan_of(
    engine: AsyncEngine, caller: Caller, call: Callable[[PgUnitOfWork], Awaitable[Any]]
) -> list[tuple[str, str | None, str | None]]:
    """Run `call` in a unit of work, then EXPLAIN the last statement it sent.

    Returns the plan's nodes as (node type, relation, index).
    """
    sent: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with PgUnitOfWork(engine, caller) as uow:
            await call(uow)
            statement, parameters = sent[-1]
            result = await uow._conn.exec_driver_sql(  # type: ignore[union-attr]
                f"explain (format json) {statement}", parameters
            )
            return list(_nodes(result.scalar_one()[0]["Plan"]))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)


def _nodes(node: dict[str, Any]) -> Iterator[tuple[str, str | None, str | None]]:
    yield node["Node Type"], node.get("Relation Name"), node.get("Index Name")
    for child in node.get("Plans", []):
        yield from _nodes(child)


def assert_indexed(plan: list[tuple[str, str | None, str | None]], index: str) -> None:
    """No table is read whole, and `index` serves the query."""
    scanned = [relation for node, relation, _ in plan if node == "Seq Scan"]
    assert not scanned, f"sequential scan of {scanned}: {plan}"
    assert index in {name for _, _, name in plan}, plan


async def test_listing_members_uses_the_workspace_index(engine: AsyncEngine, crowd) -> None:
    workspace, user = crowd
    plan = await _plan_of(
        engine, Caller(user, workspace), lambda uow: uow.memberships.list(workspace, None, 51)
    )
    assert_indexed(plan, "memberships_pkey")


async def test_listing_my_workspaces_uses_the_user_index(engine: AsyncEngine, crowd) -> None:
    _, user = crowd
    plan = await _plan_of(
        engine, Caller(user), lambda uow: uow.workspaces.list_for_user(user, None, 51)
    )
    assert_indexed(plan, "memberships_user_id_workspace_id_idx")
