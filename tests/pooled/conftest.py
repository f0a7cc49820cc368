"""Fixtures for Keel behind PgBouncer in transaction mode: one PgBouncer for
the session (2 server connections per role), the runtime and owner URLs
through it, and settings that point the app at it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import msgspec
import pytest
from sqlalchemy.engine import make_url

from entrypoints.settings import Settings
from tests.conftest import Database
from tests.pooler import Pooler, installed, running_pooler


@pytest.fixture(scope="session")
def pooler(database: Database) -> Iterator[Pooler]:
    if not installed():
        if os.environ.get("CI"):
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
