"""The live catalog, checked so that a future table or function cannot be
forgotten: every table is under forced row-level security with a policy per
command, tenant tables are indexed and keyed by workspace, and the only
functions that bypass the caller's policies are the ones SECURITY.md lists."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.database import create_engine, inspect_runtime_role
from adapters.postgres.provisioning import with_user
from entrypoints.role_checks import UnsafeDatabaseRoleError, check_database_role
from tests.conftest import Database

NOT_TENANT_DATA = {"alembic_version"}
# SECURITY.md, "Functions that run with more rights than the caller".
SECURITY_DEFINER_FUNCTIONS = {
    "caller_role",
    "keep_an_owner",
    "may_claim_ownership",
    "foundation_ids_tagged",
    "foundation_ids_containing",
    "dispatch_tasks",
    "recover_tasks",
    "record_webhook_delivery",
    "claim_webhook_deliveries",
    "finish_webhook_delivery",
}
COMMANDS = {"SELECT", "INSERT", "UPDATE", "DELETE"}


async def _rows(engine: AsyncEngine, sql: str) -> list[sa.Row[tuple[object, ...]]]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.text(sql)))


async def _tables(engine: AsyncEngine) -> set[str]:
    rows = await _rows(engine, "select tablename from pg_tables where schemaname = 'public'")
    return {row.tablename for row in rows} - NOT_TENANT_DATA


async def _tenant_tables(engine: AsyncEngine) -> set[str]:
    rows = await _rows(
        engine,
        "select table_name from information_schema.columns"
        " where table_schema = 'public' and column_name = 'workspace_id'",
    )
    return {row.table_name for row in rows}


async def test_every_table_forces_rls_with_a_policy_per_command(owner_engine: AsyncEngine) -> None:
    tables = await _tables(owner_engine)
    assert {"users", "workspaces", "memberships"} <= tables
    flags = {
        row.relname: (row.relrowsecurity, row.relforcerowsecurity)
        for row in await _rows(
            owner_engine,
            "select relname, relrowsecurity, relforcerowsecurity from pg_class"
            " where relnamespace = 'public'::regnamespace and relkind in ('r', 'p')",
        )
    }
    policies = await _rows(
        owner_engine,
        "select tablename, cmd, roles, qual, with_check from pg_policies"
        " where schemaname = 'public'",
    )
    for table in sorted(tables):
        assert flags[table] == (True, True), f"{table}: RLS must be ENABLEd and FORCEd"
        mine = [p for p in policies if p.tablename == table and "keel_app" in p.roles]
        commands = set()
        for policy in mine:
            commands |= COMMANDS if policy.cmd == "ALL" else {policy.cmd}
            if policy.cmd in ("UPDATE", "ALL"):
                assert policy.qual, f"{table}: UPDATE needs USING"
                assert policy.with_check, f"{table}: UPDATE needs WITH CHECK"
            if policy.cmd == "INSERT":
                assert policy.with_check, f"{table}: INSERT needs WITH CHECK"
        assert commands == COMMANDS, f"{table}: keel_app policies cover only {commands}"
        assert all("public" not in p.roles for p in policies), "no policy may target PUBLIC"


async def test_tenant_tables_lead_an_index_with_workspace_id(owner_engine: AsyncEngine) -> None:
    rows = await _rows(
        owner_engine,
        """
        select t.relname as table_name, a.attname as first_column
          from pg_index i
          join pg_class t on t.oid = i.indrelid
          join pg_attribute a on a.attrelid = t.oid and a.attnum = i.indkey[0]
         where t.relnamespace = 'public'::regnamespace
        """,
    )
    led = {row.table_name for row in rows if row.first_column == "workspace_id"}
    tenant_tables = await _tenant_tables(owner_engine)
    assert "memberships" in tenant_tables
    assert tenant_tables <= led, f"no index leads with workspace_id on {tenant_tables - led}"


async def test_tenant_uniques_and_foreign_keys_include_workspace_id(
    owner_engine: AsyncEngine,
) -> None:
    tenant_tables = await _tenant_tables(owner_engine)
    uniques = await _rows(
        owner_engine,
        """
        select t.relname as table_name, i.indexrelid::regclass::text as name,
               array(select attname from pg_attribute
                      where attrelid = t.oid and attnum = any(i.indkey)) as columns
          from pg_index i join pg_class t on t.oid = i.indrelid
         where i.indisunique and t.relnamespace = 'public'::regnamespace
        """,
    )
    for unique in uniques:
        if unique.table_name in tenant_tables:
            assert "workspace_id" in unique.columns, f"{unique.name} leaks across tenants"
    foreign_keys = await _rows(
        owner_engine,
        """
        select c.conname, c.conrelid::regclass::text as source,
               c.confrelid::regclass::text as target,
               array(select attname from pg_attribute
                      where attrelid = c.conrelid and attnum = any(c.conkey)) as columns
          from pg_constraint c
         where c.contype = 'f' and c.connamespace = 'public'::regnamespace
        """,
    )
    for key in foreign_keys:
        if key.source in tenant_tables and key.target in tenant_tables:
            assert "workspace_id" in key.columns, f"{key.conname} must be (workspace_id, id)"


async def test_ids_are_uuids_not_sequences(owner_engine: AsyncEngine) -> None:
    sequences = await _rows(
        owner_engine, "select sequencename from pg_sequences where schemaname = 'public'"
    )
    assert sequences == []


async def test_only_the_listed_functions_run_as_definer(owner_engine: AsyncEngine) -> None:
    rows = await _rows(
        owner_engine,
        """
        select p.proname, p.proconfig, pg_get_userbyid(p.proowner) as owner
          from pg_proc p
         where p.prosecdef
           and p.pronamespace not in ('pg_catalog'::regnamespace,
                                      'information_schema'::regnamespace)
        """,
    )
    assert {row.proname for row in rows} == SECURITY_DEFINER_FUNCTIONS
    for row in rows:
        assert row.owner == "keel_guard", f"{row.proname} must be owned by keel_guard"
        assert any(c.startswith("search_path=") for c in row.proconfig or []), row.proname


async def test_restricted_roles_cannot_bypass_rls(owner_engine: AsyncEngine) -> None:
    rows = await _rows(
        owner_engine,
        """
        select r.rolname, r.rolsuper, r.rolbypassrls, r.rolcanlogin,
               (select count(*) from pg_class c where c.relowner = r.oid) as owned
          from pg_roles r where r.rolname in ('keel_app', 'keel_guard')
        """,
    )
    assert len(rows) == 2
    for row in rows:
        assert (row.rolsuper, row.rolbypassrls, row.rolcanlogin, row.owned) == (
            False,
            False,
            False,
            0,
        ), row.rolname


async def test_runtime_role_passes_the_startup_check(engine: AsyncEngine) -> None:
    report = await inspect_runtime_role(engine)
    assert report.problems() == []
    await check_database_role(engine)


async def test_the_app_refuses_a_superuser_or_an_owner(
    owner_engine: AsyncEngine, database: Database
) -> None:
    with pytest.raises(UnsafeDatabaseRoleError, match="superuser"):
        await check_database_role(owner_engine)

    role = f"keel_test_owner_{uuid.uuid4().hex[:8]}"
    async with owner_engine.begin() as conn:
        await conn.execute(sa.text(f"create role {role} login"))
        await conn.execute(sa.text(f"grant keel_app to {role}"))
        name = await conn.scalar(sa.text("select current_database()"))
        await conn.execute(sa.text(f'grant connect on database "{name}" to {role}'))
        await conn.execute(sa.text("create table owned_by_runtime (id int)"))
        await conn.execute(sa.text(f"alter table owned_by_runtime owner to {role}"))
    engine = create_engine(with_user(database.owner_url, role), pool_size=1)
    try:
        with pytest.raises(UnsafeDatabaseRoleError, match="owns 1 table"):
            await check_database_role(engine)
    finally:
        await engine.dispose()
        async with owner_engine.begin() as conn:
            await conn.execute(sa.text("drop table owned_by_runtime"))
            await conn.execute(sa.text(f"drop owned by {role}"))
            await conn.execute(sa.text(f"drop role {role}"))


async def test_the_app_role_can_neither_shadow_tables_nor_run_the_outbox(
    owner_engine: AsyncEngine,
) -> None:
    rows = await _rows(
        owner_engine,
        """
        select r.rolname,
               has_database_privilege(r.rolname, current_database(), 'TEMPORARY') as temp,
               has_function_privilege(r.rolname, 'keel_private.dispatch_tasks(integer)',
                                      'EXECUTE') as dispatch,
               has_function_privilege(r.rolname, 'keel_private.recover_tasks(interval)',
                                      'EXECUTE') as recover,
               has_function_privilege(
                 r.rolname, 'keel_private.claim_webhook_deliveries(integer, integer, integer)',
                 'EXECUTE') as claim_webhooks,
               has_function_privilege(
                 r.rolname,
                 'keel_private.finish_webhook_delivery(uuid, uuid, integer, text, text, integer)',
                 'EXECUTE') as finish_webhooks,
               has_function_privilege(r.rolname, 'keel_private.record_webhook_delivery()',
                                      'EXECUTE') as record_webhooks
          from pg_roles r where r.rolname in ('keel_app', 'keel_dispatcher')
         order by r.rolname
        """,
    )
    assert [tuple(row) for row in rows] == [
        ("keel_app", False, False, False, False, False, False),
        ("keel_dispatcher", False, True, True, True, True, False),
    ]
