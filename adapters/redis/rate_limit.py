"""The task rate limit: `limits`' moving window, counted in Redis.

One Lua script checks and counts a request in one step, so every API process
of a deployment shares one budget per user. (Litestar's rate-limit middleware
reads a history, changes it and writes it back under an in-process lock: N
API processes let a user through up to N times the limit.)

On one Redis the count runs on Keel's own connection pool, closed with the
container. On a cluster, `limits` takes no client: it builds a redis-py
cluster client of its own from the seed node's address, closed by `aclose`.

Failures arrive as domain errors: UnavailableError when Redis cannot be
reached, StorageFullError (counted, as every refused write: client.py) when it
is full. What to do about them is the HTTP layer's choice
(entrypoints/http/rate_limit.py lets the request through).
"""

from __future__ import annotations

import math
import time
from typing import cast
from urllib.parse import urlsplit

from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisClusterStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio.cluster import RedisCluster

from adapters.redis.client import RedisClient, unavailable_as
from domain.errors import RateLimitedError
from domain.ports import Quota

WHAT = "the task rate limit"
PREFIX = "keel-rate"


class RedisRateLimit:
    def __init__(self, storage: Storage, per_minute: int, own_client: RedisCluster | None) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._item = RateLimitItemPerMinute(per_minute)
        self._own_client = own_client

    @classmethod
    def on(cls, redis: RedisClient, url: str, per_minute: int) -> RedisRateLimit:
        """The limit on Keel's client `redis` (or, on a cluster, on `url`'s seed node)."""
        if isinstance(redis, RedisCluster):
            cluster = _cluster_storage(url)
            own = cast(RedispyBridge, cluster.bridge).get_connection()
            return cls(cluster, per_minute, cast(RedisCluster, own))
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=PREFIX,
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        return cls(storage, per_minute, None)

    async def take(self, subject: str) -> Quota:
        with unavailable_as(WHAT):
            taken = await self._limiter.hit(self._item, subject)
            stats = await self._limiter.get_window_stats(self._item, subject)
        limit = self._item.amount
        reset_s = max(1, math.ceil(stats.reset_time - time.time()))
        if not taken:
            raise RateLimitedError(f"at most {limit} tasks a minute", reset_s, limit)
        return Quota(limit, stats.remaining, reset_s)

    async def aclose(self) -> None:
        if self._own_client is not None:
            await self._own_client.aclose()


def _cluster_storage(url: str) -> RedisClusterStorage:
    parts = urlsplit(url)  # the credentials, host and port of the seed node
    return RedisClusterStorage(
        f"async+redis+cluster://{parts.netloc}",
        implementation="redispy",
        key_prefix=PREFIX,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        ssl=parts.scheme == "rediss",
    )
