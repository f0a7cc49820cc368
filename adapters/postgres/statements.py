"""The slowest statements by total time, from pg_stat_statements."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class StatementStats:
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    query: str


class StatementsUnavailableError(Exception):
    """pg_stat_statements is not installed in this database."""


_TOP = sa.text(
    """
    select calls, total_exec_time as total_ms, mean_exec_time as mean_ms, rows, query
      from pg_stat_statements
     where dbid = (select oid from pg_database where datname = current_database())
     order by total_exec_time desc
     limit :limit
    """
)


async def top_statements(engine: AsyncEngine, limit: int = 10) -> list[StatementStats]:
    """Raises StatementsUnavailableError when the extension is missing."""
    async with engine.connect() as conn:
        installed = await conn.scalar(
            sa.text("select 1 from pg_extension where extname = 'pg_stat_statements'")
        )
        preloaded = "pg_stat_statements" in str(
            await conn.scalar(sa.text("show shared_preload_libraries"))
        )
        if not (installed and preloaded):
            raise StatementsUnavailableError(
                "pg_stat_statements is not available: add it to shared_preload_libraries,"
                " restart PostgreSQL, then run `create extension pg_stat_statements`"
                " as a superuser (keel dev does both for its embedded server)"
            )
        rows = await conn.execute(_TOP, {"limit": limit})
        return [
            StatementStats(r.calls, float(r.total_ms), float(r.mean_ms), r.rows, r.query)
            for r in rows
        ]


async def install_statement_stats(engine: AsyncEngine) -> None:
    """Create the extension (needs a superuser and the library preloaded)."""
    async with engine.begin() as conn:
        await conn.execute(sa.text("create extension if not exists pg_stat_statements"))
