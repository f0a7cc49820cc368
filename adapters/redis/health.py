"""Redis as the API's readiness probe sees it: one PING on the shared client."""

from __future__ import annotations

from adapters.redis.client import RedisClient


class RedisHealthProbe:
    name = "redis"

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def ping(self) -> None:
        await self._redis.ping()
