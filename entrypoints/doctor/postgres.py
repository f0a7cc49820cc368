"""`keel doctor`'s Postgres checks, read-only (every transaction READ ONLY),
as the runtime login role (`KEEL_DATABASE_URL`): who may open the database,
what the runtime roles may execute outside row-level security, row-level
security on every table, the runtime role's own rights; and, through
`KEEL_MIGRATION_DATABASE_URL` when it is set, whether migrations are at head.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy import pool
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from adapters.postgres.catalog import rls_problems
from adapters.postgres.database import POOLER_SAFE_CONNECT_ARGS, async_url
from entrypoints.doctor.policies import policy_checks
from entrypoints.doctor.report import Check, fail, ok, warn
from entrypoints.doctor.roles import runtime_role_checks
from entrypoints.doctor.schema import schema_checks

SHARED_ROLES = ("keel_app", "keel_guard", "keel_dispatcher")

# Grants as the ACLs record them (no ACL: PostgreSQL's defaults), so that
# a privilege PUBLIC holds is not reported again for every other role.
_GRANTEE = "case when a.grantee = 0 then 'public' else pg_get_userbyid(a.grantee) end"
_DATABASE_GRANTS = sa.text(
    f"select {_GRANTEE} as name, a.privilege_type as privilege from pg_database d"
    " cross join aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a"
    " where d.datname = current_database()"
    "   and a.privilege_type in ('CONNECT', 'TEMPORARY')"
    f"   and {_GRANTEE} = any(cast(:roles as text[]))"
)
_OUTSIDE_RLS = sa.text(
    f"select distinct {_GRANTEE} as name, p.proname from pg_proc p"
    " cross join aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
    " where p.pronamespace = 'pg_catalog'::regnamespace"
    "   and (p.proname like 'lo\\_%' or p.proname in ('loread', 'lowrite', 'pg_notify'))"
    "   and a.privilege_type = 'EXECUTE'"
    f"   and {_GRANTEE} = any(cast(:roles as text[]))"
)


@asynccontextmanager
async def read_only(url: str) -> AsyncIterator[AsyncEngine]:
    """Every transaction BEGIN READ ONLY: a startup parameter would do it for the
    session, but PgBouncer refuses startup parameters it does not know, and a
    transaction-mode pooler keeps no session. Uniquely named statements, no
    statement cache: `url` may lead to one."""
    engine = create_async_engine(
        async_url(url),
        poolclass=pool.NullPool,
        connect_args={
            **POOLER_SAFE_CONNECT_ARGS,
            "server_settings": {"application_name": "keel doctor"},
        },
        execution_options={"postgresql_readonly": True},
    )
    try:
        yield engine
    finally:
        await engine.dispose()


async def postgres_checks(runtime_url: str, migration_url: str | None, head: str) -> list[Check]:
    return [*await _as_runtime_role(runtime_url), await _migrations(migration_url, head)]


async def _as_runtime_role(url: str) -> list[Check]:
    async with read_only(url) as engine:
        try:
            conn = await engine.connect()
        except (OSError, DBAPIError) as error:
            return [
                fail(
                    "postgres.reachable",
                    f"cannot connect with KEEL_DATABASE_URL ({_first_line(error)}); check the"
                    " URL, and that `keel db login-role` made this role for this database.",
                )
            ]
        try:
            database = str(await conn.scalar(sa.text("select current_database()")))
            checks = [
                ok("postgres.reachable", f"connected to {database} as the runtime role."),
                *await _database_scope(conn, database),
                *await _outside_rls(conn),
                *await runtime_role_checks(conn),
                *await schema_checks(conn),
                *await policy_checks(conn),
            ]
        finally:
            await conn.close()
        return checks + _rls(await rls_problems(engine))


async def _database_scope(conn: AsyncConnection, database: str) -> list[Check]:
    held = (await conn.execute(_DATABASE_GRANTS, {"roles": ["public", *SHARED_ROLES]})).all()
    checks = []
    for privilege, name, may, harm in (
        ("CONNECT", "postgres.connect", "connect to", "so may other deployments' login roles"),
        (
            "TEMPORARY",
            "postgres.temporary",
            "create temporary tables in",
            "they shadow Keel's tables",
        ),
    ):
        holders = _names(row.name for row in held if row.privilege == privilege)
        if not holders:
            checks.append(
                ok(name, f"neither PUBLIC nor a shared Keel role holds {privilege} on {database}.")
            )
            continue
        fix = f"REVOKE {privilege} ON DATABASE {database} FROM {holders}"
        if privilege == "CONNECT":
            fix += " and give each login role its own (`keel db login-role NAME`)"
        checks.append(fail(name, f"{holders} may {may} {database} ({harm}); {fix}."))
    return checks


async def _outside_rls(conn: AsyncConnection) -> list[Check]:
    roles = ["public", *SHARED_ROLES, str(await conn.scalar(sa.text("select current_user")))]
    rows = (await conn.execute(_OUTSIDE_RLS, {"roles": roles})).all()
    checks = []
    for name, notify, what in (
        ("postgres.large-objects", False, "large objects (data outside row-level security)"),
        ("postgres.notify", True, "pg_notify (any payload on the workers' channel)"),
    ):
        found = [r for r in rows if (r.proname == "pg_notify") is notify]
        if not found:
            checks.append(ok(name, f"no runtime role may execute {what}."))
            continue
        holders = _names(r.name for r in found)
        examples = ", ".join(sorted({r.proname for r in found})[:3])
        checks.append(
            warn(
                name,
                f"{holders} may execute {examples}: {what}; as a superuser, run `keel db"
                f" upgrade` (migration 0010) or REVOKE EXECUTE on them FROM {holders}.",
            )
        )
    return checks


def _names(roles: Iterable[str]) -> str:
    return ", ".join(sorted({"PUBLIC" if role == "public" else role for role in roles}))


def _rls(problems: list[str]) -> list[Check]:
    if not problems:
        return [
            ok("postgres.rls", "every table forces row-level security with a policy per command.")
        ]
    return [
        fail("postgres.rls", f"{problem}; run `keel db upgrade`, or put back what was changed.")
        for problem in problems
    ]


async def _migrations(migration_url: str | None, head: str) -> Check:
    if migration_url is None:
        return warn(
            "postgres.migrations",
            "not checked: set KEEL_MIGRATION_DATABASE_URL (the runtime role may not read"
            " alembic_version).",
        )
    async with read_only(migration_url) as engine:
        try:
            async with engine.connect() as conn:
                current = None
                if await conn.scalar(sa.text("select to_regclass('alembic_version')")):
                    current = await conn.scalar(sa.text("select version_num from alembic_version"))
        except (OSError, DBAPIError) as error:
            return fail(
                "postgres.migrations",
                f"cannot read alembic_version ({_first_line(error)}); check"
                " KEEL_MIGRATION_DATABASE_URL.",
            )
    if current == head:
        return ok("postgres.migrations", f"at head ({head}).")
    return fail(
        "postgres.migrations",
        f"at {current or 'base'}, not head ({head}); run `keel db upgrade`.",
    )


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
