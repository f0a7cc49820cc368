"""Per-user rate limit on task creation: Litestar's rate limiting, on Redis.

The store fails open: the limit protects other tenants' share of the
workers, it is not a security boundary, and a Redis outage must not refuse
every new task (the queue's own outbox keeps them safe meanwhile). A full
Redis (out of memory) lets them through too: tasks live in Postgres.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.stores.redis import RedisStore
from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.redis.client import RedisClient, is_full, note_full

STORE = "task_rate"
logger = logging.getLogger("keel.http")


class FailOpenRedisStore(RedisStore):
    def __init__(self, redis: RedisClient, namespace: str) -> None:
        # Litestar types it as a Redis; a RedisCluster serves it as well (a key's
        # GET, SET and one-key script are all it sends; delete_all is never used).
        super().__init__(cast(Redis, redis), namespace=namespace)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        try:
            return await super().get(key, renew_for)
        except (RedisError, OSError) as error:
            logger.warning("rate limit unavailable (%r): letting the request through", error)
            return None

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        try:
            await super().set(key, value, expires_in)
        except (RedisError, OSError) as error:
            if is_full(error):
                note_full("the task rate limit")
            return


def _creates_a_task(request: Request[Any, Any, Any]) -> bool:
    return request.method == "POST" and str(request.scope.get("path_template", "")).endswith(
        "/tasks"
    )


def _user(request: Request[Any, Any, Any]) -> str:
    return f"user:{request.user.user_id}"


def task_rate_limit(per_minute: int) -> RateLimitConfig:
    return RateLimitConfig(
        rate_limit=("minute", per_minute),
        identifier_for_request=_user,
        check_throttle_handler=_creates_a_task,
        store=STORE,
    )
