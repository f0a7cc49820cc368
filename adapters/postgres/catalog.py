"""What the live catalog says about row-level security, for `keel db check`.

Every table in `public` (but Alembic's own) must have row-level security
ENABLEd and FORCEd, and keel_app policies covering SELECT, INSERT, UPDATE
(with USING and WITH CHECK) and DELETE.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

IGNORED = {"alembic_version"}
COMMANDS = {"SELECT", "INSERT", "UPDATE", "DELETE"}

_TABLES = sa.text(
    "select relname, relrowsecurity, relforcerowsecurity from pg_class"
    " where relnamespace = 'public'::regnamespace and relkind in ('r', 'p')"
)
_POLICIES = sa.text(
    "select tablename, cmd, roles, qual, with_check from pg_policies where schemaname = 'public'"
)


async def rls_problems(engine: AsyncEngine) -> list[str]:
    """One line per table whose row-level security is missing or incomplete."""
    async with engine.connect() as conn:
        tables = (await conn.execute(_TABLES)).all()
        policies = (await conn.execute(_POLICIES)).all()
    problems = []
    for table in sorted(tables, key=lambda t: t.relname):
        if table.relname in IGNORED:
            continue
        if not (table.relrowsecurity and table.relforcerowsecurity):
            problems.append(f"{table.relname}: row-level security must be ENABLEd and FORCEd")
        covered: set[str] = set()
        for policy in policies:
            if policy.tablename != table.relname or "keel_app" not in policy.roles:
                continue
            covered |= COMMANDS if policy.cmd == "ALL" else {policy.cmd}
            if policy.cmd in ("UPDATE", "ALL") and not (policy.qual and policy.with_check):
                problems.append(f"{table.relname}: its UPDATE policy needs USING and WITH CHECK")
            if policy.cmd == "INSERT" and not policy.with_check:
                problems.append(f"{table.relname}: its INSERT policy needs WITH CHECK")
        if missing := COMMANDS - covered:
            problems.append(f"{table.relname}: no keel_app policy for {', '.join(sorted(missing))}")
    return problems
