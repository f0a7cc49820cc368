"""The task rate limit counts on the container's Redis client (no pool of its
own, closed with the container), under its own namespace."""

from __future__ import annotations

from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from entrypoints.http.app import create_app
from entrypoints.http.rate_limit import STORE, FailOpenStore
from entrypoints.settings import Settings


async def test_the_rate_limit_store_is_on_the_containers_redis(settings: Settings) -> None:
    app = create_app(settings)
    async with AsyncTestClient(app):
        store = app.stores.get(STORE)
        assert isinstance(store, FailOpenStore)
        redis = await app.state.dishka_container.get(Redis)
        assert store._store._redis is redis  # type: ignore[attr-defined]
        await store.set("probe", b"1", expires_in=5)
        assert await store.get("probe") == b"1"
        assert await redis.get("keel-rate:probe") == b"1"
