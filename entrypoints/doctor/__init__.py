"""`keel doctor`: read-only checks that this Postgres and this Redis are set
up the way Keel's guarantees need. Each line is `ok`, `warn` or `fail` with
one sentence of why and how to fix it; any `fail` makes the exit code 1."""

from __future__ import annotations

import asyncio

from entrypoints.doctor.api import api_checks
from entrypoints.doctor.postgres import postgres_checks
from entrypoints.doctor.redis import redis_checks
from entrypoints.doctor.report import Check, as_json, as_text, exit_code, fail
from entrypoints.settings import Settings


async def run_checks(settings: Settings, head: str, api: str | None = None) -> list[Check]:
    checks: list[Check] = []
    if settings.database_url is None:
        checks.append(fail("postgres.reachable", "KEEL_DATABASE_URL is not set."))
    else:
        checks += await postgres_checks(
            settings.database_url, settings.migration_database_url, head
        )
    if settings.redis_url is None:
        checks.append(fail("redis.reachable", "KEEL_REDIS_URL is not set."))
    else:
        checks += await redis_checks(settings.redis_url, settings.redis_cluster)
    if api is not None:
        checks += await api_checks(api)
    return checks


def doctor(settings: Settings, *, json: bool, api: str | None = None) -> int:
    from alembic.script import ScriptDirectory

    from entrypoints.migrations import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head() or "base"
    checks = asyncio.run(run_checks(settings, head, api))
    print(as_json(checks) if json else as_text(checks))
    return exit_code(checks)
