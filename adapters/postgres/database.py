"""Engine creation and the start-up check of the runtime login role."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from adapters.postgres import stored_json
from adapters.postgres.liveness import guard


def async_url(url: str) -> str:
    """`postgresql://…` as users write it, as the URL SQLAlchemy's asyncpg dialect wants."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+asyncpg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def unique_statement_name() -> str:
    """A prepared statement's name no other client of a pooled server connection uses."""
    return f"__keel_{uuid.uuid4().hex}__"


# A transaction-mode pooler's server connection serves many clients, one
# transaction at a time: a prepared statement must neither outlive its
# transaction (no cache, in asyncpg or SQLAlchemy) nor take a name another
# client's connection also counts up to (asyncpg's `__asyncpg_stmt_N__`).
POOLER_SAFE_CONNECT_ARGS: dict[str, object] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": unique_statement_name,
}


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    statement_cache: bool = True,
    command_timeout_s: float | None = None,
) -> AsyncEngine:
    """The engine of one process; `statement_cache=False` for a transaction-mode
    pooler (PgBouncer, Supavisor): POOLER_SAFE_CONNECT_ARGS.

    `command_timeout_s` bounds the wait for each statement's answer and for a
    new connection. A server gone silent (its host lost, a failover to
    another address) never closes its connections: without a bound, a
    request on one waits for as long as TCP takes to give up (minutes to
    hours), holding its pool slot, until every slot is held and the process
    answers nothing but 503. Past the bound, asyncpg raises TimeoutError (an
    OSError: `translated()` makes it a 503) and the connection, still busy,
    is discarded when the pool tries to reset it."""
    # application_name is one of the startup parameters PgBouncer passes on.
    connect_args: dict[str, object] = {"server_settings": {"application_name": "keel"}}
    if command_timeout_s is not None:
        connect_args.update(command_timeout=command_timeout_s, timeout=command_timeout_s)
    if not statement_cache:
        connect_args.update(POOLER_SAFE_CONNECT_ARGS)
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        # No pre-ping: it would add a round trip to every transaction. A
        # connection whose session the server ended is replaced on checkout
        # instead (liveness.py); one that ends while in use fails its request
        # (503), is discarded, and the pool's older connections reconnect.
        connect_args=connect_args,
        json_deserializer=stored_json.decode,
    )
    guard(engine)
    return engine


@dataclass(frozen=True)
class RoleReport:
    name: str
    superuser: bool
    bypass_rls: bool
    owned_tables: int
    member_of_app: bool
    member_of_dispatcher: bool

    def problems(self) -> list[str]:
        found = []
        if self.superuser:
            found.append("is a superuser (superusers bypass row-level security)")
        if self.bypass_rls:
            found.append("has BYPASSRLS")
        if self.owned_tables:
            found.append(f"owns {self.owned_tables} table(s) (owners can switch RLS off)")
        if not self.member_of_app:
            found.append("is not a member of keel_app (run `keel db upgrade`, then grant it)")
        return found


_ROLE_REPORT = sa.text(
    """
    select r.rolname as name, r.rolsuper as superuser, r.rolbypassrls as bypass_rls,
           (select count(*) from pg_class c
             where c.relowner = r.oid and c.relkind in ('r', 'p')) as owned_tables,
           exists (select 1 from pg_roles a
                    where a.rolname = 'keel_app' and pg_has_role(r.oid, a.oid, 'MEMBER'))
             as member_of_app,
           exists (select 1 from pg_roles a
                    where a.rolname = 'keel_dispatcher' and pg_has_role(r.oid, a.oid, 'MEMBER'))
             as member_of_dispatcher
      from pg_roles r where r.rolname = current_user
    """
)


async def inspect_runtime_role(engine: AsyncEngine) -> RoleReport:
    async with engine.connect() as conn:
        row = (await conn.execute(_ROLE_REPORT)).one()
    return RoleReport(
        name=row.name,
        superuser=row.superuser,
        bypass_rls=row.bypass_rls,
        owned_tables=row.owned_tables,
        member_of_app=row.member_of_app,
        member_of_dispatcher=row.member_of_dispatcher,
    )
