"""`keel doctor` against a correct deployment (no `fail`, exit 0) and against
deliberately broken ones: each reports exactly the matching `fail` (or
`warn`) and exits non-zero on a fail."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from adapters.postgres.database import create_engine
from adapters.postgres.provisioning import (
    drop_database,
    drop_role,
    ensure_database,
    ensure_login_role,
    with_database,
    with_user,
)
from entrypoints.cli import main
from entrypoints.devstack.redis import EmbeddedRedis
from entrypoints.devstack.services import Services
from entrypoints.doctor.redis import latency_check, persistence_check, redis_version_check
from entrypoints.doctor.report import Status
from entrypoints.doctor.schema import server_version_check
from entrypoints.migrations import upgrade
from tests.conftest import Database

# Warnings about the test environment, not about Keel's setup: this database
# has no pg_stat_statements, and the tests' Redis keeps nothing on disk and is
# used as its default user (test_redis_acl.py tries a limited one).
ENVIRONMENT = {"postgres.statements", "redis.persistence", "redis.user"}


@dataclass(frozen=True)
class Deployment:
    name: str
    role: str
    owner_url: str
    runtime_url: str


@pytest.fixture
async def deployment(services: Services) -> AsyncIterator[Deployment]:
    """A database of its own, migrated, with a worker login role: each test may break it."""
    suffix = uuid.uuid4().hex[:10]
    name, role, password = f"keel_doctor_{suffix}", f"keel_doctor_rt_{suffix}", secrets.token_hex(8)
    await ensure_database(services.postgres_url, name)
    owner = with_database(services.postgres_url, name)
    try:
        await asyncio.to_thread(upgrade, owner, log=False)
        await ensure_login_role(owner, role, password, worker=True)
        yield Deployment(name, role, owner, with_user(owner, role, password))
    finally:
        await drop_database(services.postgres_url, name)
        await drop_role(services.postgres_url, role)


@pytest.fixture
def evicting_redis(tmp_path: Path) -> Iterator[str]:
    redis = EmbeddedRedis(tmp_path, persist=False)
    url = redis.start()
    try:
        yield url
    finally:
        redis.stop()


async def _doctor(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    runtime: str,
    migration: str | None,
    redis: str,
) -> tuple[int, dict[str, set[str]], list[dict[str, str]]]:
    """Exit code, check names by status, and the checks as `--json` prints them."""
    monkeypatch.setenv("KEEL_DATABASE_URL", runtime)
    monkeypatch.setenv("KEEL_REDIS_URL", redis)
    if migration:
        monkeypatch.setenv("KEEL_MIGRATION_DATABASE_URL", migration)
    else:
        monkeypatch.delenv("KEEL_MIGRATION_DATABASE_URL", raising=False)
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    by_status: dict[str, set[str]] = {status.value: set() for status in Status}
    for check in report["checks"]:
        by_status[check["status"]].add(check["name"])
    assert report["ok"] is (not by_status["fail"])
    return code, by_status, report["checks"]


async def test_a_correct_deployment_reports_no_fail(
    deployment: Deployment,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, found, _ = await _doctor(
        monkeypatch,
        capsys,
        runtime=deployment.runtime_url,
        migration=deployment.owner_url,
        redis=services.redis_url,
    )
    assert (code, found["fail"], found["warn"] - ENVIRONMENT) == (0, set(), set())
    assert {
        "postgres.reachable",
        "postgres.connect",
        "postgres.temporary",
        "postgres.large-objects",
        "postgres.notify",
        "postgres.rls",
        "postgres.role",
        "postgres.migrations",
        "postgres.worker",
        "postgres.definer-functions",
        "postgres.views",
        "postgres.version",
        "redis.reachable",
        "redis.mode",
        "redis.version",
        "redis.maxmemory-policy",
    } <= found["ok"]


async def test_the_text_report_is_one_line_per_check(
    deployment: Deployment,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", deployment.runtime_url)
    monkeypatch.setenv("KEEL_MIGRATION_DATABASE_URL", deployment.owner_url)
    monkeypatch.setenv("KEEL_REDIS_URL", services.redis_url)
    assert await asyncio.to_thread(main, ["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 11
    assert all(line.split()[0] in ("ok", "warn", "fail") for line in lines)
    assert any(line.startswith("ok    postgres.connect: ") for line in lines)


BROKEN = {
    "RLS disabled on a table": (
        "alter table memberships disable row level security",
        "postgres.rls",
        "memberships",
    ),
    "FORCE missing on a table": (
        "alter table tasks no force row level security",
        "postgres.rls",
        "tasks",
    ),
    "a policy dropped": (
        "drop policy foundation_documents_update on foundation_documents",
        "postgres.rls",
        "foundation_documents",
    ),
    "CONNECT granted to PUBLIC again": (
        'grant connect on database "{db}" to public',
        "postgres.connect",
        "PUBLIC may connect to",
    ),
    "CONNECT granted to a shared role": (
        'grant connect on database "{db}" to keel_app',
        "postgres.connect",
        "keel_app may connect to",
    ),
    "TEMPORARY granted to PUBLIC": (
        'grant temporary on database "{db}" to public',
        "postgres.temporary",
        "PUBLIC may create temporary tables in",
    ),
    "a superuser runtime role": ("alter role {role} superuser", "postgres.role", "superuser"),
    "a runtime role with BYPASSRLS": ("alter role {role} bypassrls", "postgres.role", "BYPASSRLS"),
    "a runtime role that owns something": (
        "create function public.stray() returns int language sql as 'select 1';"
        " alter function public.stray() owner to {role}",
        "postgres.role",
        "owns 1 object",
    ),
    "a runtime role that may create in a schema": (
        "grant create on schema public to {role}",
        "postgres.role",
        "in public",
    ),
    "keel_app may create schemas": (
        'grant create on database "{db}" to keel_app',
        "postgres.role",
        "keel_app in new schemas",
    ),
    "a SECURITY DEFINER function executable by PUBLIC": (
        "grant execute on function keel_private.keep_an_owner() to public",
        "postgres.definer-functions",
        "keel_private.keep_an_owner() runs as its owner and PUBLIC may execute it",
    ),
    "a SECURITY DEFINER function without search_path": (
        "alter function keel_private.caller_role(uuid) reset search_path",
        "postgres.definer-functions",
        "keel_private.caller_role(uuid) runs as its owner with the caller's search_path",
    ),
    "a view without security_invoker": (
        "create view public.member_names as select workspace_id, user_id from memberships",
        "postgres.views",
        "member_names",
    ),
    "a policy reading the tenant for every row": (
        "create policy foundation_documents_stray on foundation_documents for select"
        " to keel_app using (workspace_id = nullif(current_setting('app.workspace_id', true),"
        " '')::uuid)",
        "postgres.policies",
        "foundation_documents_stray on public.foundation_documents calls current_setting",
    ),
    "a policy calling caller_role for every row": (
        "create policy tasks_stray on tasks for select to keel_app"
        " using (keel_private.caller_role(workspace_id) is not null)",
        "postgres.policies",
        "tasks_stray on public.tasks calls keel_private.caller_role",
    ),
    "migrations behind head": (
        "update alembic_version set version_num = '0008'",
        "postgres.migrations",
        "at 0008",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
async def test_a_broken_deployment_reports_exactly_that_fail(
    deployment: Deployment,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    sql, name, named = BROKEN[case]
    engine = create_engine(deployment.owner_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for statement in sql.format(db=deployment.name, role=deployment.role).split(";"):
                await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()
    code, found, checks = await _doctor(
        monkeypatch,
        capsys,
        runtime=deployment.runtime_url,
        migration=deployment.owner_url,
        redis=services.redis_url,
    )
    assert (code, found["fail"]) == (1, {name})
    failed = [check["message"] for check in checks if check["status"] == "fail"]
    assert any(named in message for message in failed), failed


WARNED = {
    "large objects for PUBLIC again (a non-superuser's 0010)": (
        "grant execute on function lo_create(oid) to public",
        "postgres.large-objects",
    ),
    "pg_notify for keel_app": (
        "grant execute on function pg_notify(text, text) to keel_app",
        "postgres.notify",
    ),
    "a login role made without --worker": ("revoke keel_dispatcher from {role}", "postgres.worker"),
    "a foreign key without its index": ("drop index tasks_created_by_idx", "postgres.indexes"),
    "a function reading the caller's search_path (before 0013)": (
        "alter function keel_private.app_user_id() reset search_path",
        "postgres.functions",
    ),
}


@pytest.mark.parametrize("case", list(WARNED))
async def test_what_an_operator_may_not_be_able_to_change_is_a_warning(
    deployment: Deployment,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    sql, name = WARNED[case]
    engine = create_engine(deployment.owner_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(sql.format(role=deployment.role))
    finally:
        await engine.dispose()
    code, found, _ = await _doctor(
        monkeypatch,
        capsys,
        runtime=deployment.runtime_url,
        migration=deployment.owner_url,
        redis=services.redis_url,
    )
    assert (code, found["fail"], found["warn"] - ENVIRONMENT) == (0, set(), {name})


async def test_a_security_invoker_view_passes(
    deployment: Deployment,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = create_engine(deployment.owner_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "create view public.member_names with (security_invoker = true)"
                " as select workspace_id, user_id from memberships"
            )
    finally:
        await engine.dispose()
    code, found, _ = await _doctor(
        monkeypatch,
        capsys,
        runtime=deployment.runtime_url,
        migration=deployment.owner_url,
        redis=services.redis_url,
    )
    assert (code, found["fail"]) == (0, set())
    assert "postgres.views" in found["ok"]


async def test_an_evicting_redis_fails(
    deployment: Deployment,
    evicting_redis: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = Redis.from_url(evicting_redis)
    try:
        await client.config_set("maxmemory-policy", "allkeys-lru")
    finally:
        await client.aclose()
    code, found, _ = await _doctor(
        monkeypatch,
        capsys,
        runtime=deployment.runtime_url,
        migration=deployment.owner_url,
        redis=evicting_redis,
    )
    assert (code, found["fail"]) == (1, {"redis.maxmemory-policy"})


async def test_unreachable_services_and_another_deployments_role_fail(
    deployment: Deployment,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The runtime role of this deployment, pointed at another Keel database
    (the session's): refused since 0010, and doctor says so; what it could
    not check without KEEL_MIGRATION_DATABASE_URL is a warning."""
    other = with_database(deployment.runtime_url, str(make_url(database.owner_url).database))
    code, found, checks = await _doctor(
        monkeypatch, capsys, runtime=other, migration=None, redis="redis://127.0.0.1:1/0"
    )
    assert (code, found["fail"]) == (1, {"postgres.reachable", "redis.reachable"})
    assert found["warn"] == {"postgres.migrations"}
    refused = next(c["message"] for c in checks if c["name"] == "postgres.reachable")
    assert "permission denied for database" in refused


@pytest.mark.parametrize(
    ("version", "status"),
    [("6.0.16", Status.FAIL), ("5.0.7", Status.FAIL), ("6.2.0", Status.OK), ("7.4.1", Status.OK)],
)
def test_redis_older_than_6_2_fails(version: str, status: Status) -> None:
    assert redis_version_check(version).status is status


@pytest.mark.parametrize(
    ("number", "status"),
    [
        (120022, Status.FAIL),  # unsupported
        (130021, Status.FAIL),
        (130022, Status.OK),
        (140018, Status.FAIL),
        (150013, Status.FAIL),
        (150014, Status.OK),
        (160009, Status.FAIL),
        (160010, Status.OK),
        (170005, Status.FAIL),
        (170006, Status.OK),
        (180000, Status.OK),
    ],
)
def test_postgres_without_the_rls_fixes_fails(number: int, status: Status) -> None:
    check = server_version_check(number)
    assert check.status is status
    assert "CVE-2024-10976" in check.message


@pytest.mark.parametrize(
    ("append_only", "snapshots", "status"),
    [(True, False, Status.OK), (False, True, Status.WARN), (False, False, Status.WARN)],
)
def test_a_redis_that_keeps_nothing_on_disk_is_a_warning(
    append_only: bool, snapshots: bool, status: Status
) -> None:
    assert persistence_check(append_only, snapshots).status is status


@pytest.mark.parametrize(
    ("median_ms", "status"), [(0.2, Status.OK), (5.0, Status.OK), (12.0, Status.WARN)]
)
def test_a_slow_redis_is_a_warning(median_ms: float, status: Status) -> None:
    assert latency_check(median_ms).status is status
