"""Connections cut silently (the server's host gone, a failover to another
address): nothing closes them, nothing answers on them.

Without a bound, a statement on one waited forever (holding its pool slot),
and the worker's LISTEN connection was never noticed dead and could not be
closed: the worker hung on stop. With `command_timeout_s` the statement
fails as UnavailableError (503) and the pool replaces the connection; the
dispatcher pings its listener after a quiet wait, drops it when unanswered,
and closes within the bound. (Under load: test_postgres_under_load.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.database import create_engine
from adapters.postgres.dispatch import PgTaskDispatcher
from adapters.postgres.errors import translated
from adapters.postgres.tasks import CHANNEL
from domain.errors import UnavailableError
from tests.conftest import Database
from tests.faults.proxy import FaultProxy, postgres_target, through_postgres

pytestmark = pytest.mark.slow  # connections that go silent: `pytest -m slow`

TIMEOUT_S = 1.0
HANG_GUARD_S = 30  # far above TIMEOUT_S: only a hang reaches it


@pytest.fixture
async def proxy(own_database: Database) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(postgres_target(own_database.runtime_url)) as proxy:
        yield proxy


@pytest.fixture
def url(own_database: Database, proxy: FaultProxy) -> str:
    return through_postgres(own_database.runtime_url, proxy.port)


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url, pool_size=1, command_timeout_s=TIMEOUT_S)
    yield engine
    await engine.dispose()


async def _select(engine: AsyncEngine) -> object:
    async with engine.connect() as conn:
        return await conn.scalar(sa.text("select 1"))


async def test_a_statement_on_a_cut_connection_is_unavailable_then_replaced(
    engine: AsyncEngine, proxy: FaultProxy
) -> None:
    assert await _select(engine) == 1
    proxy.partition()
    with pytest.raises(UnavailableError), translated():
        await asyncio.wait_for(_select(engine), HANG_GUARD_S)
    proxy.heal()
    assert await asyncio.wait_for(_select(engine), HANG_GUARD_S) == 1


async def test_the_listener_on_a_cut_connection_is_replaced_and_closes(
    engine: AsyncEngine, superuser: AsyncEngine, url: str, proxy: FaultProxy
) -> None:
    dispatcher = PgTaskDispatcher(engine, url, timeout_s=TIMEOUT_S)
    await dispatcher.wait_for_work(0.05)  # listening, and answered the ping
    proxy.partition()
    await asyncio.wait_for(dispatcher.wait_for_work(0.05), HANG_GUARD_S)  # the ping goes unanswered
    proxy.heal()
    await asyncio.wait_for(dispatcher.wait_for_work(0.05), HANG_GUARD_S)  # listening again
    async with superuser.connect() as conn:
        await conn.execute(sa.text(f"notify {CHANNEL}"))
        await conn.commit()
    # Woken by the notification, long before its own wait would end.
    await asyncio.wait_for(dispatcher.wait_for_work(10 * HANG_GUARD_S), HANG_GUARD_S)
    proxy.partition()
    await asyncio.wait_for(dispatcher.close(), HANG_GUARD_S)
