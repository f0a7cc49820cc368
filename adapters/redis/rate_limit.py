"""Litestar's Redis store, for the API's rate limits, on Keel's Redis client.

Its failures arrive as domain errors: UnavailableError when Redis cannot be
reached, StorageFullError (counted, as every refused write: client.py) when
it is full. What to do about them is the HTTP layer's choice
(entrypoints/http/rate_limit.py lets the request through).
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from litestar.stores.redis import RedisStore
from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.redis.client import RedisClient, unavailable_as
from domain.errors import UnavailableError

WHAT = "the task rate limit"


class RedisRateStore(RedisStore):
    def __init__(self, redis: RedisClient, namespace: str) -> None:
        # Litestar types it as a Redis; a RedisCluster serves it as well (one
        # key per command, and a one-key script).
        super().__init__(cast(Redis, redis), namespace=namespace)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        try:
            return await super().get(key, renew_for)
        except (RedisError, OSError) as error:
            raise UnavailableError(f"{WHAT} is unavailable ({error!r})") from error

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        with unavailable_as(WHAT):
            await super().set(key, value, expires_in)
