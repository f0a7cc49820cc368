"""A database of its own for fault tests that terminate every backend of it.

Terminating the backends of the session's shared database would break the
pooled connections of every other test; these tests get a migrated database
and a runtime login role that nothing else uses. Each module makes (and
disposes of) its own engines and apps over it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.database import create_engine
from entrypoints.devstack.services import Services
from entrypoints.settings import Settings
from tests.conftest import Database, migrated_database


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
