"""Fixtures for Keel behind PgBouncer in transaction mode: one PgBouncer for
the session (2 server connections per role), the runtime and owner URLs
through it, and settings that point the app at it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import msgspec
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.database import create_engine
from entrypoints.settings import Settings
from tests.conftest import Database, People
from tests.live import live
from tests.pooler import Pooler, installed, running_pooler


@pytest.fixture(scope="session")
def pooler(database: Database) -> Iterator[Pooler]:
    if not installed():
        if os.environ.get("KEEL_REQUIRE_PGBOUNCER"):
            pytest.fail("pgbouncer is not installed (.ci/run installs it)")
        pytest.skip("pgbouncer is not installed: apt-get install pgbouncer")
    users = [make_url(database.runtime_url).username, make_url(database.owner_url).username]
    with running_pooler(database.server_url, [str(user) for user in users]) as started:
        yield started


@pytest.fixture(scope="session")
def pooled_url(pooler: Pooler, database: Database) -> str:
    """The runtime role's URL through PgBouncer."""
    return pooler.url(database.runtime_url)


@pytest.fixture(scope="session")
def pooled_settings(settings: Settings, pooled_url: str) -> Settings:
    return msgspec.structs.replace(settings, database_url=pooled_url, db_pooler="transaction")


@pytest.fixture(scope="session")
async def pooled_client(pooled_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API served (uvicorn, in the tests' event loop) with every transaction
    through PgBouncer. Not litestar's test client: its calls block the calling
    loop while the app answers in a thread, so a worker in the tests' loop
    holding both server connections would wait for the request waiting for them."""
    async with live(pooled_settings) as http:
        yield http


@pytest.fixture
def pooled_people(pooled_client: httpx.AsyncClient) -> People:
    return People(pooled_client)


@pytest.fixture(scope="session")
async def pooled_engine(pooled_url: str) -> AsyncIterator[AsyncEngine]:
    """The runtime role's engine through PgBouncer, as the app builds it there:
    10 client connections over PgBouncer's 2 server connections."""
    engine = create_engine(pooled_url, pool_size=10, statement_cache=False)
    yield engine
    await engine.dispose()
