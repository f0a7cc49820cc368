"""Per-user rate limit on task creation: Litestar's rate limiting, on Redis.

The store fails open: the limit protects other tenants' share of the
workers, it is not a security boundary, and a Redis outage must not refuse
every new task (the queue's own outbox keeps them safe meanwhile). A full
Redis (out of memory) lets them through too: tasks live in Postgres. The
store itself comes from the composition root (Redis's, whose failures are
UnavailableError); this layer only decides to let the request through.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Any

from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.stores.base import Store

from domain.errors import UnavailableError

STORE = "task_rate"
logger = logging.getLogger("keel.http")


class FailOpenStore(Store):
    """`store`, answering "no count yet" when it cannot read and forgetting what it cannot write."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        try:
            return await self._store.get(key, renew_for)
        except UnavailableError as error:
            logger.warning("%s: letting the request through", error.detail)
            return None

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        # A refused write was counted where it was refused (a full Redis is).
        with contextlib.suppress(UnavailableError):
            await self._store.set(key, value, expires_in)

    async def delete(self, key: str) -> None:
        await self._store.delete(key)

    async def delete_all(self) -> None:
        await self._store.delete_all()

    async def exists(self, key: str) -> bool:
        return await self._store.exists(key)

    async def expires_in(self, key: str) -> int | None:
        return await self._store.expires_in(key)


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
