"""Row-level security at the SQL level, as the runtime role: the database
itself keeps tenants apart, whatever the Python code above it does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.postgres.errors import sqlstate
from adapters.postgres.uow import enter_tenant
from domain.entities import Caller
from tests.conftest import People, Person

TABLES = ("users", "workspaces", "memberships")


@asynccontextmanager
async def tenant(
    engine: AsyncEngine, user: uuid.UUID, workspace: uuid.UUID | None
) -> AsyncIterator[AsyncConnection]:
    """A transaction as keel_app in (user, workspace), rolled back at the end."""
    async with engine.connect() as conn, conn.begin():
        await enter_tenant(conn, Caller(user, workspace))
        yield conn
        await conn.rollback()


async def _count(conn: AsyncConnection, sql: str, **params: object) -> int:
    return int(await conn.scalar(sa.text(sql), params) or 0)


async def _refused(conn: AsyncConnection, sql: str, **params: object) -> str | None:
    """Run `sql` in a savepoint; the SQLSTATE it failed with, or None."""
    try:
        async with conn.begin_nested():
            await conn.execute(sa.text(sql), params)
    except DBAPIError as error:
        return sqlstate(error)[0]
    return None


@pytest.fixture
async def two_tenants(people: People) -> tuple[Person, uuid.UUID, Person, uuid.UUID, Person]:
    """Owner A with workspace A (and a member), owner B with workspace B."""
    owner_a, owner_b = await people.new(), await people.new()
    workspace_a, workspace_b = await people.workspace(owner_a), await people.workspace(owner_b)
    member_a = await people.join(workspace_a, owner_a, "member")
    return owner_a, workspace_a, owner_b, workspace_b, member_a


async def test_with_b_variables_no_row_of_a_is_visible(engine: AsyncEngine, two_tenants) -> None:
    owner_a, workspace_a, owner_b, workspace_b, member_a = two_tenants
    async with tenant(engine, owner_b.id, workspace_b) as conn:
        assert (
            await _count(conn, "select count(*) from workspaces where id = :a", a=workspace_a) == 0
        )
        assert (
            await _count(
                conn, "select count(*) from memberships where workspace_id = :a", a=workspace_a
            )
            == 0
        )
        assert (
            await _count(
                conn, "select count(*) from users where id in (:x, :y)", x=owner_a.id, y=member_a.id
            )
            == 0
        )
        # The same queries do see B's own rows: the zeros above are not vacuous.
        assert await _count(conn, "select count(*) from workspaces") == 1
        assert (
            await _count(
                conn, "select count(*) from memberships where workspace_id = :b", b=workspace_b
            )
            == 1
        )


async def test_pointing_the_variable_at_a_foreign_workspace_shows_nothing(
    engine: AsyncEngine, two_tenants
) -> None:
    _, workspace_a, owner_b, _, member_a = two_tenants
    async with tenant(engine, owner_b.id, workspace_a) as conn:
        for table, column in (("workspaces", "id"), ("memberships", "workspace_id")):
            count = await _count(
                conn, f"select count(*) from {table} where {column} = :a", a=workspace_a
            )
            assert count == 0, table
        assert await _count(conn, "select count(*) from users where id = :x", x=member_a.id) == 0
        assert (
            await conn.scalar(sa.text("select keel_private.caller_role(:a)"), {"a": workspace_a})
            is None
        )


async def test_writes_into_a_foreign_workspace_are_rejected(
    engine: AsyncEngine, owner_engine: AsyncEngine, two_tenants
) -> None:
    owner_a, workspace_a, owner_b, workspace_b, member_a = two_tenants
    for context in (workspace_b, workspace_a, None):
        async with tenant(engine, owner_b.id, context) as conn:
            assert (
                await _refused(
                    conn,
                    "insert into memberships (workspace_id, user_id, role)"
                    " values (:a, :me, 'owner')",
                    a=workspace_a,
                    me=owner_b.id,
                )
                == "42501"
            ), context
            updated = await conn.execute(
                sa.text("update memberships set role = 'viewer' where workspace_id = :a"),
                {"a": workspace_a},
            )
            assert updated.rowcount == 0
            deleted = await conn.execute(
                sa.text("delete from workspaces where id = :a"), {"a": workspace_a}
            )
            assert deleted.rowcount == 0
    async with owner_engine.connect() as conn:
        roles = await conn.execute(
            sa.text("select user_id, role from memberships where workspace_id = :a"),
            {"a": workspace_a},
        )
        assert dict(roles.all()) == {owner_a.id: "owner", member_a.id: "member"}


async def test_moving_a_row_into_a_foreign_workspace_is_rejected(
    engine: AsyncEngine, people: People, two_tenants
) -> None:
    _, workspace_a, owner_b, workspace_b, _ = two_tenants
    member_b = await people.join(workspace_b, owner_b, "member")
    async with tenant(engine, owner_b.id, workspace_b) as conn:
        assert (
            await _refused(
                conn,
                "update memberships set workspace_id = :a where workspace_id = :b and user_id = :m",
                a=workspace_a,
                b=workspace_b,
                m=member_b.id,
            )
            == "42501"
        )


async def test_no_variables_means_zero_rows(engine: AsyncEngine, two_tenants) -> None:
    async with engine.connect() as conn, conn.begin():
        await conn.execute(sa.text("set local role keel_app"))
        for table in TABLES:
            assert await _count(conn, f"select count(*) from {table}") == 0, table


async def test_variables_do_not_outlive_their_transaction(engine: AsyncEngine, two_tenants) -> None:
    owner_a, workspace_a, *_ = two_tenants
    async with engine.connect() as conn:
        async with conn.begin():
            await enter_tenant(conn, Caller(owner_a.id, workspace_a))
            assert await _count(conn, "select count(*) from workspaces") == 1
        async with conn.begin():
            assert await conn.scalar(sa.text("select current_setting('app.user_id', true)")) == ""
            assert await conn.scalar(sa.text("select current_user")) != "keel_app"
            await conn.execute(sa.text("set local role keel_app"))
            for table in TABLES:
                assert await _count(conn, f"select count(*) from {table}") == 0, table


async def test_the_login_role_alone_can_read_no_table(engine: AsyncEngine, two_tenants) -> None:
    async with engine.connect() as conn, conn.begin():
        for table in TABLES:
            assert await _refused(conn, f"select count(*) from {table}") == "42501", table


async def test_roles_are_enforced_by_policies_too(
    engine: AsyncEngine, people: People, two_tenants
) -> None:
    owner_a, workspace_a, *_ = two_tenants
    viewer = await people.join(workspace_a, owner_a, "viewer")
    admin = await people.join(workspace_a, owner_a, "admin")
    outsider = await people.new()
    async with tenant(engine, viewer.id, workspace_a) as conn:
        promoted = await conn.execute(
            sa.text("update memberships set role = 'owner' where user_id = :me"), {"me": viewer.id}
        )
        assert promoted.rowcount == 0
        assert (
            await _refused(
                conn,
                "insert into memberships (workspace_id, user_id, role) values (:a, :u, 'viewer')",
                a=workspace_a,
                u=outsider.id,
            )
            == "42501"
        )
        renamed = await conn.execute(sa.text("update workspaces set name = 'mine'"))
        assert renamed.rowcount == 0
    async with tenant(engine, admin.id, workspace_a) as conn:
        assert (
            await _refused(
                conn, "update memberships set role = 'owner' where user_id = :me", me=admin.id
            )
            == "42501"
        )
        demoted = await conn.execute(
            sa.text("update memberships set role = 'viewer' where user_id = :o"), {"o": owner_a.id}
        )
        assert demoted.rowcount == 0
        deleted = await conn.execute(sa.text("delete from workspaces"))
        assert deleted.rowcount == 0


async def test_ownership_of_another_users_workspace_cannot_be_claimed(
    engine: AsyncEngine, people: People, two_tenants
) -> None:
    owner_a, workspace_a, owner_b, *_ = two_tenants
    async with tenant(engine, owner_b.id, None) as conn:
        assert (
            await _refused(
                conn,
                "insert into memberships (workspace_id, user_id, role) values (:a, :me, 'owner')",
                a=workspace_a,
                me=owner_b.id,
            )
            == "42501"
        )
        assert (
            await conn.scalar(
                sa.text("select keel_private.may_claim_ownership(:a)"), {"a": workspace_a}
            )
            is False
        )
    # Not even its creator, once it has members.
    async with tenant(engine, owner_a.id, None) as conn:
        assert (
            await conn.scalar(
                sa.text("select keel_private.may_claim_ownership(:a)"), {"a": workspace_a}
            )
            is False
        )


async def test_a_workspace_cannot_be_created_in_someone_elses_name(
    engine: AsyncEngine, two_tenants
) -> None:
    owner_a, _, owner_b, *_ = two_tenants
    async with tenant(engine, owner_b.id, None) as conn:
        assert (
            await _refused(
                conn,
                "insert into workspaces (id, name, created_by) values (:id, 'x', :a)",
                id=uuid.uuid4(),
                a=owner_a.id,
            )
            == "42501"
        )
        assert await _refused(conn, "insert into users (id) values (:x)", x=uuid.uuid4()) == "42501"


async def test_the_search_functions_answer_only_inside_ones_own_workspace(
    engine: AsyncEngine, client, two_tenants
) -> None:
    owner_a, workspace_a, owner_b, workspace_b, _ = two_tenants
    created = await client.post(
        f"/v1/workspaces/{workspace_a}/foundation",
        json={"kind": "brand", "title": "t", "content": {"secret": 1}, "tags": ["x"]},
        headers=owner_a.headers,
    )
    assert created.status_code == 201
    searches = (
        "select count(*) from keel_private.foundation_ids_tagged('x')",
        """select count(*) from keel_private.foundation_ids_containing('{"secret": 1}')""",
    )
    async with tenant(engine, owner_a.id, workspace_a) as conn:
        for search in searches:
            assert await _count(conn, search) == 1
    for context in (workspace_a, workspace_b, None):
        async with tenant(engine, owner_b.id, context) as conn:
            for search in searches:
                assert await _count(conn, search) == 0, (context, search)


async def test_a_tenant_session_cannot_plant_temporary_tables_or_drain_the_outbox(
    engine: AsyncEngine, two_tenants
) -> None:
    owner_a, workspace_a, *_ = two_tenants
    async with tenant(engine, owner_a.id, workspace_a) as conn:
        assert (
            await _refused(conn, "create temporary table foundation_documents (id uuid)") == "42501"
        )
        assert await _refused(conn, "select * from keel_private.dispatch_tasks(1000)") == "42501"
        assert (
            await _refused(conn, "select keel_private.recover_tasks(interval '-100 years')")
            == "42501"
        )


async def test_worker_functions_run_under_the_tasks_tenant_context(
    engine: AsyncEngine, owner_engine: AsyncEngine, two_tenants
) -> None:
    """keel_worker's functions are SECURITY INVOKER: they become keel_app in the
    tenant context they are given, so row-level security decides what they touch,
    and neither the role nor the variables outlive the call's transaction."""
    _, workspace_a, owner_b, workspace_b, member_a = two_tenants
    task = uuid.uuid4()
    async with engine.connect() as conn, conn.begin():
        await enter_tenant(conn, Caller(member_a.id, workspace_a))
        await conn.execute(
            sa.text(
                "insert into tasks (workspace_id, id, kind, input, created_by)"
                " values (:w, :t, 'summarize', '{\"text\": \"x\"}', :u)"
            ),
            {"w": workspace_a, "t": task, "u": member_a.id},
        )
    claim = "select id, attempts from keel_worker.claim_task(:w, :t, :u, 4, 30000, :h)"

    async def claimed(workspace: uuid.UUID, user: uuid.UUID) -> list[tuple[object, ...]]:
        async with engine.connect() as conn:
            params = {"w": workspace, "t": task, "u": user, "h": uuid.uuid4()}
            rows = [tuple(row) for row in await conn.execute(sa.text(claim), params)]
            await conn.commit()
            # The role and the variables were transaction-local: they ended with it.
            assert await conn.scalar(sa.text("select current_user")) != "keel_app"
            assert await conn.scalar(sa.text("select current_setting('app.user_id', true)")) == ""
            assert await _refused(conn, "select count(*) from tasks") == "42501"
            return rows

    async def make(role: str) -> None:
        async with owner_engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "update memberships set role = :r where workspace_id = :w and user_id = :u"
                ),
                {"r": role, "w": workspace_a, "u": member_a.id},
            )

    # Another tenant's context reaches nothing, even naming the task.
    assert await claimed(workspace_b, owner_b.id) == []
    assert await claimed(workspace_a, owner_b.id) == []
    # The creator can no longer write there: the guarded update matches the row,
    # and the policy still refuses it (the task is reported as waiting, unclaimed).
    await make("viewer")
    assert await claimed(workspace_a, member_a.id) == [(task, 0)]
    await make("member")
    assert await claimed(workspace_a, member_a.id) == [(task, 1)]
