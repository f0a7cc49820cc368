"""`keel doctor` through PgBouncer: the same verdicts as on a direct
connection, and still read-only (PgBouncer refuses the startup parameter
that made it so before)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from entrypoints.doctor.postgres import postgres_checks, read_only
from entrypoints.migrations import alembic_config
from tests.conftest import Database


async def test_the_doctor_finds_the_same_through_the_pooler(
    database: Database, pooled_url: str
) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head() or "base"
    direct = await postgres_checks(database.runtime_url, database.owner_url, head)
    pooled = await postgres_checks(pooled_url, database.owner_url, head)
    verdicts = {check.name: check.status for check in direct}
    assert {check.name: check.status for check in pooled} == verdicts
    assert verdicts["postgres.reachable"].value == "ok"


@pytest.mark.parametrize("through", ["direct", "pooler"])
async def test_the_doctors_transactions_are_read_only(
    database: Database, pooled_url: str, through: str
) -> None:
    url = database.runtime_url if through == "direct" else pooled_url
    async with read_only(url) as engine, engine.connect() as conn:
        assert await conn.scalar(sa.text("select current_setting('transaction_read_only')")) == "on"
        with pytest.raises(DBAPIError, match="read-only transaction"):
            await conn.execute(sa.text("create temporary table doctor_wrote (x int)"))
