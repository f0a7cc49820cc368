"""`keel doctor`'s checks of how the policies will run: no policy calls a
per-request function (`current_setting`, the `app_*` readers, `caller_role`,
Supabase's `auth.uid()` / `auth.jwt()`) once per row instead of once per
query in an init-plan (`(select f())`), and the columns the policies and
foreign keys look rows up by lead an index (a policy's `workspace_id`, each
foreign key's columns), so that row-level security never means a scan."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from entrypoints.doctor.report import Check, fail, ok, warn

_PER_REQUEST = re.compile(
    r"(SELECT\s+)?((?:\w+\.)?(?:current_setting|app_user_id|app_workspace_id|caller_role"
    r"|uid|jwt))\s*\(",
    re.IGNORECASE,
)
_POLICIES = sa.text(
    """
    select schemaname || '.' || tablename as table_name, policyname as policy,
           coalesce(qual, '') || ' ' || coalesce(with_check, '') as expression
      from pg_policies where schemaname = 'public' order by 1, 2
    """
)
# Foreign keys, and each RLS table's workspace_id, with no index led by them.
_UNINDEXED = sa.text(
    """
    with wanted as (
      select c.conrelid as rel, c.conkey as columns, c.conname as why
        from pg_constraint c
       where c.contype = 'f' and c.connamespace = 'public'::regnamespace
      union all
      select t.oid, array[a.attnum], 'its policies'
        from pg_class t join pg_attribute a on a.attrelid = t.oid and a.attname = 'workspace_id'
       where t.relnamespace = 'public'::regnamespace and t.relrowsecurity)
    select w.rel::regclass::text as table_name, w.why,
           array(select attname from pg_attribute
                  where attrelid = w.rel and attnum = any(w.columns)) as columns
      from wanted w
     where not exists (
           select from pg_index i
            where i.indrelid = w.rel
              and (select array_agg(k order by k) from unnest(w.columns) k)
                  = (select array_agg(k order by k)
                       from unnest((i.indkey::int2[])[0:cardinality(w.columns) - 1]) k))
     order by 1, 2
    """
)


def per_row_calls(expression: str) -> list[str]:
    """The per-request functions `expression` calls outside an init-plan."""
    return sorted({m.group(2) for m in _PER_REQUEST.finditer(expression) if not m.group(1)})


async def policy_checks(conn: AsyncConnection) -> list[Check]:
    checks = []
    for row in (await conn.execute(_POLICIES)).all():
        if calls := per_row_calls(row.expression):
            checks.append(
                fail(
                    "postgres.policies",
                    f"policy {row.policy} on {row.table_name} calls {', '.join(calls)} for every"
                    " row; wrap each call as `(select f())` so it runs once per query.",
                )
            )
    if not checks:
        checks.append(ok("postgres.policies", "every policy reads the request's identity once."))
    missing = (await conn.execute(_UNINDEXED)).all()
    checks += [
        warn(
            "postgres.indexes",
            f"{row.table_name}({', '.join(row.columns)}), which {row.why} look(s) up, leads no"
            " index: each lookup scans the table; create one.",
        )
        for row in missing
    ] or [ok("postgres.indexes", "every foreign key and policy column leads an index.")]
    return checks
