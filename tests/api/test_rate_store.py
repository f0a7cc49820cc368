"""The task rate limit counts on the container's Redis client (no pool of its
own, closed with the container), under its own namespace."""

from __future__ import annotations

import asyncio

from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from adapters.redis.client import RedisClient
from entrypoints.http.app import create_app
from entrypoints.http.rate_limit import STORE, FailOpenStore
from entrypoints.settings import Settings


async def _clients(observer: Redis) -> int:
    return len(await observer.client_list())


async def test_the_rate_limit_store_is_on_the_containers_redis(settings: Settings) -> None:
    assert settings.redis_url is not None
    # The app runs on the test client's own event loop: Redis is observed from
    # here with a client of the test's, never through the app's connections.
    observer = Redis.from_url(settings.redis_url)
    try:
        before = await _clients(observer)
        app = create_app(settings)
        async with AsyncTestClient(app) as client:
            store = app.stores.get(STORE)
            assert isinstance(store, FailOpenStore)
            redis = client.blocking_portal.call(app.state.dishka_container.get, RedisClient)
            assert store._store._redis is redis  # type: ignore[attr-defined]
            client.blocking_portal.call(lambda: store.set("probe", b"1", expires_in=5))
            assert client.blocking_portal.call(store.get, "probe") == b"1"
            assert await observer.get("keel-rate:probe") == b"1"
            assert await _clients(observer) > before
        # Shutting down closed the container's connections, the store's included.
        for _ in range(100):
            if await _clients(observer) <= before:
                break
            await asyncio.sleep(0.05)
        assert await _clients(observer) <= before
    finally:
        await observer.aclose()
