"""Which database errors are "not now" (503 with Retry-After), and which are not.

Each SQLSTATE is raised for real by the server (PL/pgSQL `raise ... using
errcode`), so it reaches `translated()` through asyncpg and SQLAlchemy exactly
as it would in production. Every member of classes 08 (connection
exception), 53 (insufficient resources, e.g. 53300 too many connections) and
57 (operator intervention, e.g. 57P01 admin shutdown) becomes
UnavailableError; errors that are the caller's or a bug keep their mapping
or stay unexpected (500). After each, the engine serves the next statement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.database import create_engine
from adapters.postgres.errors import translated
from domain.errors import NotFoundError, UnavailableError
from tests.conftest import Database

UNAVAILABLE = [
    "08000",  # connection_exception
    "08001",  # sqlclient_unable_to_establish_sqlconnection
    "08003",  # connection_does_not_exist
    "08004",  # sqlserver_rejected_establishment_of_sqlconnection
    "08006",  # connection_failure
    "08007",  # transaction_resolution_unknown
    "08P01",  # protocol_violation
    "53000",  # insufficient_resources
    "53100",  # disk_full
    "53200",  # out_of_memory
    "53300",  # too_many_connections
    "53400",  # configuration_limit_exceeded
    "57000",  # operator_intervention
    "57014",  # query_canceled (statement_timeout, a cancel request)
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "57P04",  # database_dropped
    "57P05",  # idle_session_timeout
    "40001",  # serialization_failure (as before)
    "40P01",  # deadlock_detected (as before)
]
UNEXPECTED = ["22012", "22P02", "23505", "42601", "42P01", "XX000", "0A000"]


def _raise(code: str) -> sa.TextClause:
    assert code.isalnum(), code
    return sa.text(
        f"do $$ begin raise exception 'raised on purpose' using errcode = '{code}'; end $$"
    )


@pytest.fixture(scope="module")
async def engine(own_database: Database) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(own_database.owner_url, pool_size=1)
    yield engine
    await engine.dispose()


async def _still_serves(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("select 1")) == 1


@pytest.mark.parametrize("code", UNAVAILABLE)
async def test_not_now_errors_are_unavailable(engine: AsyncEngine, code: str) -> None:
    async with engine.connect() as conn:
        with pytest.raises(UnavailableError) as raised, translated():
            await conn.execute(_raise(code))
    assert raised.value.retry_after_s >= 1
    await _still_serves(engine)


@pytest.mark.parametrize("code", UNEXPECTED)
async def test_other_errors_are_not_unavailable(engine: AsyncEngine, code: str) -> None:
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError), translated():
            await conn.execute(_raise(code))
    await _still_serves(engine)


async def test_a_refused_row_is_still_not_found(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        with pytest.raises(NotFoundError), translated():
            await conn.execute(_raise("42501"))


async def test_a_pool_with_no_connection_to_spare_is_unavailable() -> None:
    with pytest.raises(UnavailableError), translated():
        raise PoolTimeoutError("QueuePool limit of size 1 overflow 1 reached")
