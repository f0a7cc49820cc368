"""Fixtures: one real Postgres database (migrated) and one Redis per test run.

Tests are isolated by data, not by truncation: every test creates its own
users and workspaces with fresh UUIDs, and row-level security keeps their
rows apart. Tests that need a database of their own (migrations) make one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.database import create_engine
from adapters.postgres.provisioning import (
    drop_database,
    drop_role,
    ensure_database,
    ensure_login_role,
    with_database,
    with_user,
)
from adapters.redis.cache import RedisCache
from adapters.redis.client import RedisClient, create_listener, create_redis
from adapters.redis.events import RedisEventBus
from entrypoints.devstack.services import Services, test_services
from entrypoints.http.app import create_app
from entrypoints.http.auth import issue_token
from entrypoints.migrations import upgrade
from entrypoints.settings import Settings
from tests.pooler import Pooler, running_pooler
from tests.redis_cluster import CLUSTER, RedisClusterProcesses

# KEEL_TEST_POOLER=1: the app's and the runtime engine's transactions go
# through a PgBouncer of the session's own, in transaction mode (CI's step 3).
POOLED = os.environ.get("KEEL_TEST_POOLER", "") == "1"

JWT_SECRET = "test-secret-" + "x" * 60
AUDIENCE = "authenticated"


@dataclass(frozen=True)
class Database:
    server_url: str
    owner_url: str
    runtime_url: str
    runtime_role: str


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """The dev stack's services; with KEEL_TEST_REDIS_CLUSTER=1 the Redis is a
    Redis Cluster of the session's own (tests/redis_cluster.py)."""
    if not CLUSTER:
        with test_services() as found:
            yield found
        return
    cluster = RedisClusterProcesses()
    try:
        with test_services(cluster_url=cluster.start()) as found:
            yield found
        # The cache and the rate limiter answer without Redis when it
        # refuses a command: a refusal for keys of two slots must still fail.
        assert cluster.crossslot_errors() == 0, "a command touched keys of two slots"
    finally:
        cluster.stop()


@asynccontextmanager
async def migrated_database(services: Services, prefix: str) -> AsyncIterator[Database]:
    """A database of its own, migrated to head, with a runtime login role;
    both dropped after."""
    suffix = uuid.uuid4().hex[:12]
    name, role = f"{prefix}_{suffix}", f"{prefix}_rt_{suffix}"
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
async def database(services: Services) -> AsyncIterator[Database]:
    async with migrated_database(services, "keel_test") as created:
        yield created


@pytest.fixture(scope="session")
async def owner_engine(database: Database) -> AsyncIterator[AsyncEngine]:
    """The schema owner's engine: for setting up and inspecting, never for the app."""
    engine = create_engine(database.owner_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def session_pooler(database: Database) -> Iterator[Pooler | None]:
    """With KEEL_TEST_POOLER=1, a PgBouncer in transaction mode in front of the
    session's Postgres (tests/pooler.py); else None."""
    if not POOLED:
        yield None
        return
    users = [database.runtime_role, str(make_url(database.owner_url).username)]
    with running_pooler(database.server_url, users, pool_size=20) as started:
        yield started


@pytest.fixture(scope="session")
def runtime_url(database: Database, session_pooler: Pooler | None) -> str:
    """The runtime role's URL as the app has it: through the pooler when there is one."""
    return (
        database.runtime_url if session_pooler is None else session_pooler.url(database.runtime_url)
    )


@pytest.fixture(scope="session")
async def engine(runtime_url: str, session_pooler: Pooler | None) -> AsyncIterator[AsyncEngine]:
    """The runtime role's engine, as the app uses it."""
    engine = create_engine(runtime_url, pool_size=5, statement_cache=session_pooler is None)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def redis(services: Services) -> AsyncIterator[RedisClient]:
    client = create_redis(services.redis_url, cluster=services.redis_cluster)
    yield client
    await client.aclose()


@pytest.fixture
async def bus(services: Services) -> AsyncIterator[RedisEventBus]:
    """The event bus as a worker or an API process has it, with clients of its own."""
    cluster = services.redis_cluster
    client = create_redis(services.redis_url, cluster=cluster)
    listener = create_listener(services.redis_url, cluster=cluster)
    bus = RedisEventBus(client, listener)
    yield bus
    await bus.close()
    await client.aclose()
    await listener.aclose()


@pytest.fixture(scope="session")
async def cache(services: Services) -> AsyncIterator[RedisCache]:
    """The Redis cache as the app builds it (50 ms timeout, no retries)."""
    client = create_redis(
        services.redis_url, cluster=services.redis_cluster, timeout_s=0.05, retries=0
    )
    cache = RedisCache(client)
    yield cache
    await cache.retries.close()
    await client.aclose()


@pytest.fixture(scope="session")
def settings(
    database: Database, services: Services, runtime_url: str, session_pooler: Pooler | None
) -> Settings:
    pooled = session_pooler is not None
    return Settings(
        database_url=runtime_url,
        db_pooler="transaction" if pooled else "none",
        # The outbox's LISTEN cannot go through a transaction-mode pooler.
        database_listen_url=database.runtime_url if pooled else None,
        redis_url=services.redis_url,
        redis_cluster=services.redis_cluster,
        jwt_secret=JWT_SECRET,
        jwt_audience=AUDIENCE,
        # A webhook receiver that never answers holds up a worker's next batch.
        webhook_timeout_s=2,
    )


@pytest.fixture(scope="session")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncTestClient(create_app(settings)) as test_client:
        yield test_client


def bearer(user_id: uuid.UUID, email: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, AUDIENCE, user_id, email)}"}


@dataclass(frozen=True)
class Person:
    """A signed-in user of the API under test."""

    id: uuid.UUID
    headers: dict[str, str]


class People:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @property
    def client(self) -> httpx.AsyncClient:
        return self._client

    async def new(self) -> Person:
        user_id = uuid.uuid4()
        person = Person(user_id, bearer(user_id, f"{user_id.hex[:8]}@example.test"))
        assert (await self._client.get("/v1/me", headers=person.headers)).status_code == 200
        return person

    async def workspace(self, owner: Person, name: str = "Acme") -> uuid.UUID:
        response = await self._client.post(
            "/v1/workspaces", json={"name": name}, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        return uuid.UUID(response.json()["id"])

    async def join(self, workspace: uuid.UUID, owner: Person, role: str) -> Person:
        """A new user, added to `workspace` by its owner with `role`."""
        person = await self.new()
        response = await self._client.post(
            f"/v1/workspaces/{workspace}/members",
            json={"user_id": str(person.id), "role": role},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        return person

    async def document(self, workspace: uuid.UUID, author: Person, body: dict[str, object]) -> str:
        """A foundation document's id, written by `author`."""
        response = await self._client.post(
            f"/v1/workspaces/{workspace}/foundation", json=body, headers=author.headers
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest.fixture
def people(client: httpx.AsyncClient) -> People:
    return People(client)
