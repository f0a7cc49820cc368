"""The tenant list queries use an index, checked with EXPLAIN on tables large
enough that the planner would rather scan them if it could."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.uow import PgUnitOfWork, enter_tenant
from domain.entities import Caller, FoundationFilter

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


DOCUMENTS = 20_000


@pytest.fixture(scope="module")
async def library(owner_engine: AsyncEngine, crowd) -> tuple[uuid.UUID, uuid.UUID]:
    """A workspace with many foundation documents: rare kinds, tags and contents."""
    workspace, user = crowd
    async with owner_engine.begin() as conn:
        await conn.execute(
            sa.text(
                "insert into foundation_documents"
                " (workspace_id, id, kind, title, content, tags, created_by, updated_by)"
                " select cast(:ws as uuid), gen_random_uuid(),"
                "  case when g % 500 = 0 then 'rare' else 'common' end, 'd' || g,"
                "  jsonb_build_object('segment', 's' || (g % 1000), 'n', g),"
                "  array['t' || (g % 700), 'all'], cast(:user as uuid), cast(:user as uuid)"
                " from generate_series(1, :n) g"
            ),
            {"ws": workspace, "user": user, "n": DOCUMENTS},
        )
        await conn.execute(sa.text("analyze foundation_documents"))
    return workspace, user


async def _nested_plans(
    owner_engine: AsyncEngine, caller: Caller, statement: str, params: dict[str, Any]
) -> list[tuple[str, str | None, str | None]]:
    """Run `statement` as keel_app; the plan nodes of every statement it ran,
    functions' bodies included (auto_explain, as notices: needs a superuser)."""
    notices: list[str] = []
    async with owner_engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        listener = lambda _conn, message: notices.append(message.message)  # noqa: E731
        raw.add_log_listener(listener)
        try:
            async with conn.begin():
                for setting in (
                    "load 'auto_explain'",
                    "set local auto_explain.log_min_duration = 0",
                    "set local auto_explain.log_nested_statements = on",
                    "set local auto_explain.log_level = notice",
                    "set local auto_explain.log_format = json",
                    "set local client_min_messages = notice",
                ):
                    await conn.execute(sa.text(setting))
                await enter_tenant(conn, caller)
                await conn.execute(sa.text(statement), params)
                await conn.rollback()
        finally:
            raw.remove_log_listener(listener)
    nodes = []
    for notice in notices:
        if "{" in notice:
            plan = json.loads(notice[notice.index("{") :])
            nodes += list(_nodes(plan["Plan"]))
    return nodes


@pytest.mark.parametrize(
    ("where", "index"),
    [
        (FoundationFilter(kind="rare"), "foundation_documents_workspace_id_kind_id_idx"),
        (FoundationFilter(tag="t7"), "foundation_documents_pkey"),
        (FoundationFilter(contains={"segment": "s7"}), "foundation_documents_pkey"),
    ],
    ids=["kind", "tag", "contains"],
)
async def test_foundation_filters_use_their_index(
    engine: AsyncEngine, library, where: FoundationFilter, index: str
) -> None:
    workspace, user = library
    plan = await _plan_of(
        engine,
        Caller(user, workspace),
        lambda uow: uow.foundation.list(workspace, where, None, 51),
    )
    assert_indexed(plan, index)


@pytest.mark.parametrize(
    ("function", "argument", "index"),
    [
        ("foundation_ids_tagged", "t7", "foundation_documents_tags_idx"),
        ("foundation_ids_containing", '{"segment": "s7"}', "foundation_documents_content_idx"),
    ],
)
async def test_tag_and_containment_matches_use_the_gin_indexes(
    owner_engine: AsyncEngine, library, function: str, argument: str, index: str
) -> None:
    """Inside the SECURITY DEFINER functions: RLS would forbid the index for @>."""
    workspace, user = library
    is_superuser = await _is_superuser(owner_engine)
    if not is_superuser:
        pytest.skip("auto_explain needs a superuser connection to the test server")
    cast = "jsonb" if "containing" in function else "text"
    plan = await _nested_plans(
        owner_engine,
        Caller(user, workspace),
        f"select count(*) from keel_private.{function}(cast(:a as {cast}))",
        {"a": argument},
    )
    assert_indexed(plan, index)


async def _is_superuser(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return bool(
            await conn.scalar(sa.text("select rolsuper from pg_roles where rolname = current_user"))
        )
