"""`keel doctor`'s checks of the server and of Keel's own schemas (public,
keel_private, keel_worker): SECURITY DEFINER functions pin `search_path` and
are not executable by PUBLIC, views run as their caller
(`security_invoker`), the server has the row-level-security fixes of
2023-2025, and whether `pg_stat_statements` is there.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from entrypoints.doctor.report import Check, fail, ok, warn

SCHEMAS = ["public", "keel_private", "keel_worker"]

# The last of the RLS CVEs each supported major release was fixed in:
# CVE-2023-2455 (policies inlined under another user's ID), CVE-2023-39418
# (MERGE skipped UPDATE/SELECT policies), CVE-2024-10976 (policies below a
# subquery kept the planning user's ID), CVE-2025-8713 (optimizer statistics
# read rows that policies hide).
FIXED = {13: (13, 22), 14: (14, 19), 15: (15, 14), 16: (16, 10), 17: (17, 6)}
CVES = "CVE-2023-2455, CVE-2023-39418, CVE-2024-10976 and CVE-2025-8713"

_UNPINNED = sa.text(
    """
    select p.oid::regprocedure::text from pg_proc p
     where not p.prosecdef and p.pronamespace::regnamespace::text = any(cast(:schemas as text[]))
       and not exists (select from unnest(coalesce(p.proconfig, '{}')) c
                        where c like 'search_path=%')
       and not exists (select from pg_depend d
                        where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                          and d.deptype = 'e')
     order by 1
    """
)
_DEFINERS = sa.text(
    """
    select p.oid::regprocedure::text as function,
           not exists (select from unnest(coalesce(p.proconfig, '{}')) c
                        where c like 'search_path=%') as unpinned,
           exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                    where a.grantee = 0 and a.privilege_type = 'EXECUTE') as public
      from pg_proc p
     where p.prosecdef and p.pronamespace::regnamespace::text = any(cast(:schemas as text[]))
     order by 1
    """
)
_VIEWS = sa.text(
    """
    select c.oid::regclass::text as view from pg_class c
     where c.relkind = 'v' and c.relnamespace::regnamespace::text = any(cast(:schemas as text[]))
       and not coalesce('security_invoker=true' = any(c.reloptions)
                        or 'security_invoker=on' = any(c.reloptions), false)
       -- An extension's own views (pg_stat_statements) are its to define,
       -- and read no tenant table.
       and not exists (select from pg_depend d
                        where d.classid = 'pg_class'::regclass and d.objid = c.oid
                          and d.deptype = 'e')
     order by 1
    """
)


async def schema_checks(conn: AsyncConnection) -> list[Check]:
    params = {"schemas": SCHEMAS}
    checks = []
    definers = (await conn.execute(_DEFINERS, params)).all()
    for row in definers:
        if row.unpinned:
            checks.append(
                fail(
                    "postgres.definer-functions",
                    f"{row.function} runs as its owner with the caller's search_path, so a"
                    " caller's objects can stand in for pg_catalog's; add"
                    " `SET search_path = pg_catalog, pg_temp` to it.",
                )
            )
        if row.public:
            checks.append(
                fail(
                    "postgres.definer-functions",
                    f"{row.function} runs as its owner and PUBLIC may execute it; REVOKE"
                    " EXECUTE ON FUNCTION it FROM PUBLIC and grant it to the role that needs it.",
                )
            )
    if not checks:
        checks.append(
            ok(
                "postgres.definer-functions",
                f"{len(definers)} SECURITY DEFINER function(s), each with a pinned search_path"
                " and none executable by PUBLIC.",
            )
        )
    unpinned = (await conn.scalars(_UNPINNED, params)).all()
    checks.append(
        warn(
            "postgres.functions",
            f"{', '.join(unpinned)} read(s) the caller's search_path; `keel db upgrade`"
            " (migration 0013) pins it, or ALTER FUNCTION … SET search_path = pg_catalog, pg_temp.",
        )
        if unpinned
        else ok("postgres.functions", "every function of Keel's schemas pins its search_path.")
    )
    views = (await conn.scalars(_VIEWS, params)).all()
    checks += [
        fail(
            "postgres.views",
            f"view {view} reads its tables as its owner, past row-level security; ALTER VIEW"
            f" {view} SET (security_invoker = true).",
        )
        for view in views
    ] or [ok("postgres.views", "no view reads as its owner (every one is security_invoker).")]
    checks.append(
        server_version_check(int(await conn.scalar(sa.text("show server_version_num")) or 0))
    )
    checks.append(await _statements(conn))
    return checks


def server_version_check(number: int) -> Check:
    """`number` as `server_version_num` spells it: 150014 is 15.14."""
    major, minor = number // 10000, number % 10000
    shown = f"{major}.{minor}"
    fixed = FIXED.get(major)
    if major > max(FIXED):
        return ok("postgres.version", f"PostgreSQL {shown} has the fixes for {CVES}.")
    if fixed is None:
        return fail(
            "postgres.version",
            f"PostgreSQL {shown} is no longer supported and lacks fixes for {CVES}; upgrade.",
        )
    if (major, minor) < fixed:
        return fail(
            "postgres.version",
            f"PostgreSQL {shown} lacks fixes for row-level security ({CVES});"
            f" upgrade to {fixed[0]}.{fixed[1]} or later.",
        )
    return ok("postgres.version", f"PostgreSQL {shown} has the fixes for {CVES}.")


async def _statements(conn: AsyncConnection) -> Check:
    present = await conn.scalar(
        sa.text("select exists (select from pg_extension where extname = 'pg_stat_statements')")
    )
    if present:
        return ok("postgres.statements", "pg_stat_statements is installed.")
    return warn(
        "postgres.statements",
        "pg_stat_statements is not installed, so `keel db slow-queries` has nothing to"
        " read; add it to shared_preload_libraries and CREATE EXTENSION pg_stat_statements.",
    )
