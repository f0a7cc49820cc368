"""A database of its own for fault tests that terminate every backend of it,
and a Redis of a module's own for those that stop, pause or flush it.

Terminating the backends of the session's shared database would break the
pooled connections of every other test; these tests get a migrated database
and a runtime login role that nothing else uses. Each module makes (and
disposes of) its own engines and apps over it. Likewise the session's Redis
is shared by every test (and may be a Redis Cluster): a scenario that breaks
Redis gets an embedded server without persistence instead.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.database import create_engine
from entrypoints.devstack.redis import EmbeddedRedis
from entrypoints.devstack.services import Services
from entrypoints.settings import Settings
from tests.conftest import Database, migrated_database
from tests.faults.scenario import Stack, stack


@pytest.fixture(scope="session")
async def own_database(services: Services) -> AsyncIterator[Database]:
    async with migrated_database(services, "keel_fault") as created:
        yield created


@pytest.fixture(scope="module")
async def superuser(own_database: Database) -> AsyncIterator[AsyncEngine]:
    """The owner's engine over the fault database: locks, terminations, inspection
    (two connections: a lock holder and a watcher at once)."""
    engine = create_engine(own_database.owner_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def own_settings(settings: Settings, own_database: Database) -> Settings:
    """The test settings, pointed at the database of this module's own."""
    return msgspec.structs.replace(settings, database_url=own_database.runtime_url)


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A standalone Redis of the module's own, without persistence (a restart empties it)."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis-faults")), persist=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def quiet_when_slow(request: pytest.FixtureRequest) -> Iterator[None]:
    """Only the app's errors on standard output beside the slow scenarios'
    report (`pytest -m slow -s tests/faults`): the access log line of every
    request would bury it. For a whole module (its fixtures serve requests
    too) when one of its slow tests is to run."""
    slow = any(
        item.get_closest_marker("slow") is not None and item.module is request.module
        for item in request.session.items
    )
    if not slow:
        yield
        return
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        yield
    finally:
        structlog.configure(**before)


@pytest.fixture
async def system(
    own_settings: Settings, own_database: Database, own_redis: EmbeddedRedis, superuser: AsyncEngine
) -> AsyncIterator[Stack]:
    async with stack(own_settings, own_database, own_redis.url, superuser) as started:
        yield started
