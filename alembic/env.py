"""Alembic environment: async (asyncpg), one transaction per migration.

The URL is the schema owner's: `sqlalchemy.url` when a caller (`keel db`,
the tests) sets it, else KEEL_MIGRATION_DATABASE_URL. A lock timeout makes
a migration wait seconds, not forever, behind a long transaction.
"""

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.postgres.database import async_url
from adapters.postgres.tables import metadata

LOCK_TIMEOUT = os.environ.get("KEEL_MIGRATION_LOCK_TIMEOUT", "5s")

if context.config.config_file_name and context.config.attributes.get("log", True):
    # Progress: one "Running upgrade A -> B" line per migration, on stderr.
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get(
        "KEEL_MIGRATION_DATABASE_URL"
    )
    if not url:
        raise SystemExit(
            "KEEL_MIGRATION_DATABASE_URL is not set: it is the URL of the role that owns "
            "Keel's schema, e.g. postgresql://owner@db.example.com/keel"
        )
    return async_url(url)


def _configure(connection: Connection | None = None, **extra: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        transaction_per_migration=True,
        compare_type=True,
        **extra,
    )


def _run(connection: Connection) -> None:
    connection.execute(text("select set_config('lock_timeout', :t, false)"), {"t": LOCK_TIMEOUT})
    connection.commit()
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
