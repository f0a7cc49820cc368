"""A database of its own for fault tests that terminate every backend of it.

Terminating the backends of the session's shared database would break the
pooled connections of every other test; these tests get a migrated database
and a runtime login role that nothing else uses. Each module makes (and
disposes of) its own engines and apps over it.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from adapters.postgres.provisioning import (
    drop_database,
    drop_role,
    ensure_database,
    ensure_login_role,
    with_database,
    with_user,
)
from entrypoints.migrations import upgrade
from entrypoints.settings import Settings
from tests.conftest import Database
from tests.services import Services


@pytest.fixture(scope="session")
async def own_database(services: Services) -> AsyncIterator[Database]:
    suffix = uuid.uuid4().hex[:12]
    name, role = f"keel_fault_{suffix}", f"keel_fault_rt_{suffix}"
    await ensure_database(services.postgres_url, name)
    owner = with_database(services.postgres_url, name)
    try:
        await asyncio.to_thread(upgrade, owner, log=False)
        password = secrets.token_hex(16)
        await ensure_login_role(owner, role, password)
        yield Database(services.postgres_url, owner, with_user(owner, role, password), role)
    finally:
        await drop_database(services.postgres_url, name)
        await drop_role(services.postgres_url, role)


@pytest.fixture(scope="session")
def own_settings(settings: Settings, own_database: Database) -> Settings:
    """The test settings, pointed at the database of this module's own."""
    return msgspec.structs.replace(settings, database_url=own_database.runtime_url)
