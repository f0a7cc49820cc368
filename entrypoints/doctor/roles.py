"""The runtime role's own rights, for `keel doctor`: bound by row-level
security (not superuser, no BYPASSRLS), owning nothing (an owner can switch
RLS off, and drop or alter what it owns), in keel_app, and able to create
nothing: no schema in the database, no object in any schema, for itself or
as the roles it switches to. And whether it may run `keel worker` (in
keel_dispatcher): a warning only, since an API's role need not."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from entrypoints.doctor.report import Check, fail, ok, warn

_ROLE = sa.text(
    """
    select r.rolname as name, r.rolsuper as superuser, r.rolbypassrls as bypass_rls,
           (select count(*) from pg_class where relowner = r.oid)
           + (select count(*) from pg_proc where proowner = r.oid)
           + (select count(*) from pg_namespace where nspowner = r.oid)
           + (select count(*) from pg_largeobject_metadata where lomowner = r.oid) as owned,
           exists (select from pg_roles a
                    where a.rolname = 'keel_app' and pg_has_role(r.oid, a.oid, 'MEMBER'))
             as member_of_app,
           exists (select from pg_roles a
                    where a.rolname = 'keel_dispatcher' and pg_has_role(r.oid, a.oid, 'MEMBER'))
             as member_of_dispatcher
      from pg_roles r where r.rolname = current_user
    """
)
_CREATE = sa.text(
    """
    with r as (select rolname as name from pg_roles
                where rolname in (current_user, 'keel_app', 'keel_dispatcher'))
    select r.name, n.nspname as target from r
      join pg_namespace n on n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
                          and has_schema_privilege(r.name, n.oid, 'CREATE')
    union all
    select r.name, 'new schemas' from r
     where has_database_privilege(r.name, current_database(), 'CREATE')
    """
)


async def runtime_role_checks(conn: AsyncConnection) -> list[Check]:
    role = (await conn.execute(_ROLE)).one()
    return [*await _bounds(conn, role), _worker(role)]


def _worker(role: sa.Row[Any]) -> Check:
    if role.member_of_dispatcher:
        return ok(
            "postgres.worker", f"{role.name} is in keel_dispatcher: it may run `keel worker`."
        )
    return warn(
        "postgres.worker",
        f"{role.name} is not in keel_dispatcher: enough for `keel api`, but `keel worker`"
        f" needs `keel db login-role {role.name} --worker`.",
    )


async def _bounds(conn: AsyncConnection, role: sa.Row[Any]) -> list[Check]:
    problems = []
    if role.superuser:
        problems.append("is a superuser (superusers bypass row-level security)")
    if role.bypass_rls:
        problems.append("has BYPASSRLS")
    if role.owned:
        problems.append(f"owns {role.owned} object(s) (an owner can switch row-level security off)")
    if not role.member_of_app:
        problems.append("is not a member of keel_app")
    creates = (await conn.execute(_CREATE)).all()
    if creates:
        where = ", ".join(sorted({f"{r.name} in {r.target}" for r in creates}))
        problems.append(f"may CREATE ({where})")
    if not problems:
        return [
            ok(
                "postgres.role",
                f"{role.name} is bound by row-level security, owns nothing and may create nothing.",
            )
        ]
    return [
        fail(
            "postgres.role",
            f"{role.name} {problem}; make the runtime role with `keel db login-role NAME`"
            " and take away what it was given.",
        )
        for problem in problems
    ]
