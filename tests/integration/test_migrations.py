"""Migrations: the stairway (each revision applied over the previous one's
data, then read back), down to base and up again, a real downgrade in every
revision, and `keel db check` clean on head and loud on drift."""

from __future__ import annotations

import ast
import asyncio
import inspect
import logging
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.database import create_engine
from adapters.postgres.provisioning import (
    drop_database,
    ensure_database,
    with_database,
    with_user,
)
from entrypoints.cli import main
from entrypoints.devstack.services import Services
from entrypoints.migrations import REPO_ROOT, alembic_config, downgrade, upgrade

USER, WORKSPACE, DOCUMENT, TASK, RETRIED = (uuid.uuid4() for _ in range(5))


async def _seed_0001(conn: sa.Connection) -> None:
    await conn.execute(sa.text("insert into users (id, email) values (:u, 'a@b.c')"), {"u": USER})
    await conn.execute(
        sa.text("insert into workspaces (id, name, created_by) values (:w, 'stairs', :u)"),
        {"w": WORKSPACE, "u": USER},
    )
    await conn.execute(
        sa.text("insert into memberships (workspace_id, user_id, role) values (:w, :u, 'owner')"),
        {"w": WORKSPACE, "u": USER},
    )


async def _seed_0002(conn: sa.Connection) -> None:
    await conn.execute(
        sa.text(
            "insert into foundation_documents"
            " (workspace_id, id, kind, title, content, created_by, updated_by)"
            " values (:w, :d, 'brand', 'Voice', '{\"tone\": \"warm\"}', :u, :u)"
        ),
        {"w": WORKSPACE, "d": DOCUMENT, "u": USER},
    )


# One seed per revision: a new migration must add its own, so that the next
# one is always applied over real data.
async def _seed_0003(conn: sa.Connection) -> None:
    await conn.execute(
        sa.text(
            "insert into tasks (workspace_id, id, kind, input, created_by)"
            " values (:w, :t, 'summarize', '{\"text\": \"x\"}', :u)"
        ),
        {"w": WORKSPACE, "t": TASK, "u": USER},
    )


async def _seed_0004(conn: sa.Connection) -> None:
    await conn.execute(
        sa.text(
            "insert into task_attempts (workspace_id, id, task_id, attempt, outcome)"
            " values (:w, gen_random_uuid(), :t, 1, 'started')"
        ),
        {"w": WORKSPACE, "t": TASK},
    )


async def _seed_0005(conn: sa.Connection) -> None:
    # Through a worker function: it becomes keel_app, so RLS applies to its update.
    await conn.execute(
        sa.text("select keel_worker.postpone_task(:w, :t, :u, 250)"),
        {"w": WORKSPACE, "t": TASK, "u": USER},
    )


async def _seed_0006(conn: sa.Connection) -> None:
    # caller_role answers inside the policies: a heartbeat for a task that is
    # not running changes nothing and says so (null).
    lease = await conn.scalar(
        sa.text("select keel_worker.heartbeat_task(:w, :t, :u, 1, 30000, 0)"),
        {"w": WORKSPACE, "t": TASK, "u": USER},
    )
    assert lease is None


async def _seed_0007(conn: sa.Connection) -> None:
    # The batch functions take the seeded task through a claim and a finish.
    claimed = await conn.execute(
        sa.text(
            "select id, status from keel_worker.claim_tasks("
            " array[cast(:w as uuid)], array[cast(:t as uuid)], array[cast(:u as uuid)],"
            " array[4], array[30000], array[gen_random_uuid()])"
        ),
        {"w": WORKSPACE, "t": TASK, "u": USER},
    )
    assert [tuple(row) for row in claimed] == [(TASK, "running")]
    finished = await conn.scalars(
        sa.text(
            "select keel_worker.finish_tasks("
            " array[cast(:w as uuid)], array[cast(:t as uuid)], array[cast(:u as uuid)],"
            " array[1], array['succeeded'], array[cast('{\"text\": \"x\"}' as jsonb)],"
            " array[cast(null as text)], array[false], array[gen_random_uuid()])"
        ),
        {"w": WORKSPACE, "t": TASK, "u": USER},
    )
    assert list(finished) == [TASK]


async def _seed_0008(conn: sa.Connection) -> None:
    # The seeded task has finished: a batched heartbeat changes nothing and says so.
    answered = await conn.execute(
        sa.text(
            "select task, asked from keel_worker.heartbeat_tasks("
            " array[cast(:w as uuid)], array[cast(:t as uuid)], array[cast(:u as uuid)],"
            " array[1], array[30000], array[50])"
        ),
        {"w": WORKSPACE, "t": TASK, "u": USER},
    )
    assert [tuple(row) for row in answered] == [(TASK, None)]


async def _seed_0009(conn: sa.Connection) -> None:
    # The seeded task was not traced; a traced one is dispatched with its trace.
    assert (
        await conn.scalar(sa.text("select trace_context from tasks where id = :t"), {"t": TASK})
        is None
    )
    traced = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await conn.execute(
        sa.text(
            "insert into tasks (workspace_id, id, kind, input, created_by, trace_context)"
            " values (:w, gen_random_uuid(), 'summarize', '{}', :u, :trace)"
        ),
        {"w": WORKSPACE, "u": USER, "trace": traced},
    )
    dispatched = await conn.scalars(
        sa.text("select trace_context from keel_private.dispatch_tasks(10)")
    )
    assert list(dispatched) == [traced]
    await conn.execute(sa.text("delete from tasks where trace_context is not null"))


async def _seed_0010(conn: sa.Connection) -> None:
    # PUBLIC may no longer connect nor call pg_notify; a retry still wakes the
    # workers (a plain NOTIFY, made as keel_app inside the function).
    assert not await conn.scalar(
        sa.text("select has_database_privilege('public', current_database(), 'connect')")
    )
    assert not await conn.scalar(
        sa.text("select has_function_privilege('keel_app', 'pg_notify(text, text)', 'execute')")
    )
    await conn.execute(
        sa.text(
            "insert into tasks (workspace_id, id, kind, input, created_by, status, attempts)"
            " values (:w, :t, 'summarize', '{}', :u, 'running', 1)"
        ),
        {"w": WORKSPACE, "t": RETRIED, "u": USER},
    )
    retried = await conn.scalar(
        sa.text("select keel_worker.retry_task(:w, :t, :u, 1, 10, 'again', gen_random_uuid())"),
        {"w": WORKSPACE, "t": RETRIED, "u": USER},
    )
    assert retried is True


async def _seed_0011(conn: sa.Connection) -> None:
    # A task failed at its first attempt is replayed once by the worker
    # function: queued again with a fresh budget, its attempts kept. (Deleted
    # after: the stairway reads the seeded task back as the one task.)
    failed = uuid.uuid4()
    await conn.execute(
        sa.text(
            "insert into tasks (workspace_id, id, kind, input, created_by, status, attempts)"
            " values (:w, :t, 'summarize', '{\"text\": \"x\"}', :u, 'failed', 1)"
        ),
        {"w": WORKSPACE, "t": failed, "u": USER},
    )
    replay = sa.text(
        "select status, attempts, budget_from from keel_worker.replay_task("
        " :w, :t, :u, 1, gen_random_uuid())"
    )
    args = {"w": WORKSPACE, "t": failed, "u": USER}
    assert [tuple(row) for row in await conn.execute(replay, args)] == [("queued", 1, 1)]
    assert list(await conn.execute(replay, args)) == []
    await conn.execute(sa.text("reset role"))  # the function became keel_app
    await conn.execute(sa.text("delete from tasks where id = :t"), {"t": failed})


async def _seed_0012(conn: sa.Connection) -> None:
    # A webhook: the seeded task, finishing again after a cancel-and-requeue,
    # is recorded for delivery by the trigger; the claim hands out its URL.
    await conn.execute(
        sa.text(
            "insert into workspace_webhooks (workspace_id, url, secret)"
            " values (:w, 'https://hooks.example.test/keel', 'whsec_c2VjcmV0')"
        ),
        {"w": WORKSPACE},
    )
    await conn.execute(sa.text("update tasks set status = 'running' where id = :t"), {"t": TASK})
    await conn.execute(sa.text("update tasks set status = 'succeeded' where id = :t"), {"t": TASK})
    claimed = await conn.execute(
        sa.text("select url, attempts from keel_private.claim_webhook_deliveries(10, 30000, 5)")
    )
    assert [tuple(row) for row in claimed] == [("https://hooks.example.test/keel", 1)]


async def _seed_0013(conn: sa.Connection) -> None:
    # Every function of Keel's schemas pins search_path, and enter_tenant's
    # transaction-local role and variables still outlive the call.
    unpinned = await conn.scalars(
        sa.text(
            "select p.oid::regprocedure::text from pg_proc p"
            " where p.pronamespace::regnamespace::text in ('public', 'keel_private', 'keel_worker')"
            " and not exists (select from unnest(coalesce(p.proconfig, '{}')) c"
            "                 where c like 'search_path=%')"
        )
    )
    assert list(unpinned) == []
    await conn.execute(
        sa.text("select keel_worker.enter_tenant(:w, :u)"), {"w": WORKSPACE, "u": USER}
    )
    entered = await conn.execute(
        sa.text("select current_user, keel_private.app_user_id(), keel_private.app_workspace_id()")
    )
    assert tuple(entered.one()) == ("keel_app", USER, WORKSPACE)
    await conn.execute(sa.text("reset role"))


async def _seed_0014(conn: sa.Connection) -> None:
    # Every foreign key to users leads an index now (keel doctor's rule).
    unindexed = await conn.scalars(
        sa.text(
            "select c.conname from pg_constraint c where c.contype = 'f'"
            " and c.confrelid = 'users'::regclass and not exists ("
            "   select from pg_index i where i.indrelid = c.conrelid"
            "   and (i.indkey::int2[])[0] = c.conkey[1])"
        )
    )
    assert list(unindexed) == []


SEEDS: dict[str, Callable[[sa.Connection], Awaitable[None]]] = {
    "0001": _seed_0001,
    "0002": _seed_0002,
    "0003": _seed_0003,
    "0004": _seed_0004,
    "0005": _seed_0005,
    "0006": _seed_0006,
    "0007": _seed_0007,
    "0008": _seed_0008,
    "0009": _seed_0009,
    "0010": _seed_0010,
    "0011": _seed_0011,
    "0012": _seed_0012,
    "0013": _seed_0013,
    "0014": _seed_0014,
}


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


@pytest.fixture
async def empty_database(services: Services) -> AsyncIterator[tuple[str, AsyncEngine]]:
    name = f"keel_migrate_{uuid.uuid4().hex[:10]}"
    await ensure_database(services.postgres_url, name)
    url = with_database(services.postgres_url, name)
    engine = create_engine(url, pool_size=1)
    try:
        yield url, engine
    finally:
        await engine.dispose()
        await drop_database(services.postgres_url, name)


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text("select tablename from pg_tables where schemaname = 'public'")
        )
        return {row.tablename for row in rows}


def test_every_revision_has_a_seed_and_a_real_downgrade() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(script.walk_revisions())
    assert {r.revision for r in revisions} == set(SEEDS)
    for revision in revisions:
        body = inspect.getsource(revision.module.downgrade)
        assert "op." in body, f"{revision.revision} has no downgrade"


async def test_stairway_up_down_and_up_again(empty_database) -> None:
    url, engine = empty_database
    for revision in _revisions():
        await asyncio.to_thread(upgrade, url, revision, log=False)
        async with engine.begin() as conn:
            await SEEDS[revision](conn)
    async with engine.connect() as conn:
        read_back = await conn.execute(
            sa.text(
                "select w.name, m.role, d.title, d.version, t.status from workspaces w"
                " join memberships m on m.workspace_id = w.id"
                " join foundation_documents d on d.workspace_id = w.id"
                " join tasks t on t.workspace_id = w.id where w.id = :w and t.id = :t"
            ),
            {"w": WORKSPACE, "t": TASK},
        )
        assert tuple(read_back.one()) == ("stairs", "owner", "Voice", 1, "succeeded")

    await asyncio.to_thread(downgrade, url, "base", log=False)
    assert await _tables(engine) == {"alembic_version"}
    await asyncio.to_thread(upgrade, url, log=False)
    assert {"users", "workspaces", "memberships", "foundation_documents"} <= await _tables(engine)


async def test_0010_downgrade_gives_back_what_it_took(empty_database) -> None:
    url, engine = empty_database
    await asyncio.to_thread(upgrade, url, log=False)
    granted = sa.text(
        "select has_database_privilege('public', current_database(), 'connect'),"
        " has_function_privilege('public', 'lo_create(oid)', 'execute'),"
        " has_function_privilege('public', 'pg_notify(text, text)', 'execute'),"
        " pg_get_functiondef('keel_worker.retry_task(uuid, uuid, uuid, integer, integer,"
        " text, uuid)'::regprocedure) like '%pg_notify%'"
    )
    async with engine.connect() as conn:
        assert tuple((await conn.execute(granted)).one()) == (False, False, False, False)
    await asyncio.to_thread(downgrade, url, "0009", log=False)
    async with engine.connect() as conn:
        assert tuple((await conn.execute(granted)).one()) == (True, True, True, True)


async def test_0010_run_by_a_non_superuser_owner_skips_the_catalog_with_a_warning(
    empty_database, caplog: pytest.LogCaptureFixture
) -> None:
    """Managed Postgres: the owner may revoke CONNECT on its database but not
    touch pg_catalog's functions; the migration says so and goes on."""
    url, engine = empty_database
    await asyncio.to_thread(upgrade, url, "0009", log=False)
    owner = f"keel_migrate_owner_{uuid.uuid4().hex[:8]}"
    retry = "keel_worker.retry_task(uuid, uuid, uuid, integer, integer, text, uuid)"
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"create role {owner} login password 'owner-pw'"))
        database = await conn.scalar(sa.text("select current_database()"))
        await conn.execute(sa.text(f'alter database "{database}" owner to {owner}'))
        await conn.execute(sa.text(f"alter table alembic_version owner to {owner}"))
        await conn.execute(sa.text(f"alter schema keel_worker owner to {owner}"))
        await conn.execute(sa.text(f"alter function {retry} owner to {owner}"))
    try:
        owner_url = with_user(url, owner, "owner-pw")
        with caplog.at_level(logging.WARNING):
            await asyncio.to_thread(upgrade, owner_url, "0010", log=False)
        assert "0010: not a superuser" in caplog.text
        async with engine.connect() as conn:
            granted = await conn.execute(
                sa.text(
                    "select has_database_privilege('public', current_database(), 'connect'),"
                    " has_function_privilege('public', 'pg_notify(text, text)', 'execute'),"
                    " (select version_num from alembic_version)"
                )
            )
            assert tuple(granted.one()) == (False, True, "0010")
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"reassign owned by {owner} to current_user"))
            await conn.execute(sa.text(f"drop owned by {owner}"))
            await conn.execute(sa.text(f"drop role {owner}"))


async def test_keel_db_check_is_clean_on_head_and_names_drift(
    empty_database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, engine = empty_database
    await asyncio.to_thread(upgrade, url, log=False)
    monkeypatch.setenv("KEEL_MIGRATION_DATABASE_URL", url)
    assert await asyncio.to_thread(main, ["db", "check"]) == 0
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("drop policy foundation_documents_update on foundation_documents")
        )
        await conn.execute(sa.text("alter table memberships no force row level security"))
    assert await asyncio.to_thread(main, ["db", "check"]) == 1
    errors = capsys.readouterr().err
    assert "foundation_documents: no keel_app policy for UPDATE" in errors
    assert "memberships: row-level security must be ENABLEd and FORCEd" in errors


async def test_a_bad_target_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], empty_database
) -> None:
    url, _ = empty_database
    monkeypatch.setenv("KEEL_MIGRATION_DATABASE_URL", url)
    assert await asyncio.to_thread(main, ["db", "upgrade", "nonsense"]) == 1
    assert "keel db upgrade:" in capsys.readouterr().err


async def test_keel_db_slow_queries_reads_pg_stat_statements(
    empty_database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, engine = empty_database
    monkeypatch.setenv("KEEL_MIGRATION_DATABASE_URL", url)
    async with engine.connect() as conn:
        preloaded = "pg_stat_statements" in str(
            await conn.scalar(sa.text("show shared_preload_libraries"))
        )
    if not preloaded:
        assert await asyncio.to_thread(main, ["db", "slow-queries"]) == 1
        assert "shared_preload_libraries" in capsys.readouterr().err
        return
    async with engine.begin() as conn:
        await conn.execute(sa.text("create extension if not exists pg_stat_statements"))
        await conn.execute(sa.text("select count(*) from pg_class where relname = 'keel_probe'"))
    assert await asyncio.to_thread(main, ["db", "slow-queries"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["calls", "total", "ms", "mean", "ms", "rows", "query"]
    assert "keel_probe" not in out  # constants are normalised away by Postgres
    assert "pg_class" in out


FAILING = '''"""A migration that fails half-way.

Revision ID: 9999
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"


def upgrade() -> None:
    op.create_table("half_made", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("select 1 / 0")


def downgrade() -> None:
    op.drop_table("half_made")
'''


async def test_a_failed_migration_is_rolled_back_and_named(
    empty_database,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url, engine = empty_database
    head = _revisions()[-1]
    versions = tmp_path / "versions"
    shutil.copytree(REPO_ROOT / "alembic" / "versions", versions)
    (versions / "9999_failing.py").write_text(FAILING.replace("{head}", head))
    original = alembic_config

    def with_failing_step(*args: object, **kwargs: object) -> Config:
        config = original(*args, **kwargs)  # type: ignore[arg-type]
        config.set_main_option("version_locations", str(versions))
        return config

    monkeypatch.setattr("entrypoints.migrations.alembic_config", with_failing_step)
    monkeypatch.setenv("KEEL_MIGRATION_DATABASE_URL", url)
    assert await asyncio.to_thread(main, ["db", "upgrade"]) == 1
    error = capsys.readouterr().err
    assert f"the migration after revision {head} failed" in error
    assert "division by zero" in error
    assert "half_made" not in await _tables(engine)
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("select version_num from alembic_version")) == head


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == name
    ]


def _literal(node: ast.expr) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def test_indexes_on_existing_tables_are_built_concurrently() -> None:
    """A table that may already be large is indexed CONCURRENTLY (in Alembic's
    autocommit block), so that a deploy never locks it for the whole build."""
    for path in sorted((REPO_ROOT / "alembic" / "versions").glob("*.py")):
        tree = ast.parse(path.read_text())
        created = {_literal(call.args[0]) for call in _calls(tree, "create_table")}
        for call in _calls(tree, "create_index"):
            table = _literal(call.args[1])
            concurrently = any(
                k.arg == "postgresql_concurrently" and _literal(k.value) is True
                for k in call.keywords
            )
            assert table in created or concurrently, f"{path.name}: index on {table}"
        for call in _calls(tree, "execute"):
            sql = str(_literal(call.args[0]) or "").lower()
            for table in re.findall(r"create (?:unique )?index (?!concurrently)\S* on (\w+)", sql):
                assert table in created, f"{path.name}: index on {table} needs CONCURRENTLY"
