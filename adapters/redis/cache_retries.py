"""Invalidations Redis did not take, tried again until they land.

A cached value is served at most until its TTL, so an invalidation that failed
(Redis unreachable right after the commit) would leave a removed member's role
or a replaced document readable for up to that long: 60 s, 300 s. A failed
invalidation is therefore kept here and written again, with backoff, until it
lands, or until every value it could hide has expired anyway (the longest TTL
a fill of this process used, measured from the failure).

Written by hand: tenacity retries one call, while these are merged (one
pending write per generation key, whatever the number of failures, all sent
together) and each has a deadline of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from uuid import uuid4

from prometheus_client import Counter
from redis.exceptions import RedisError

from adapters.machinery.pipelining import BatchedCommands
from adapters.redis.client import is_full, note_full

logger = logging.getLogger("keel.cache")

RETRIED = Counter(
    "keel_cache_invalidations_retried",
    "Failed cache invalidations, by how their retry ended",
    ["result"],
)


async def new_generations(batch: BatchedCommands, keys: list[str], ttl_ms: int) -> None:
    """New generation tokens for `keys`: what was cached under the old ones is
    unreachable. A full Redis deletes them instead (it still deletes). Raises
    RedisError or OSError when neither was taken."""
    sets = (("SET", key, uuid4().hex, "PX", ttl_ms) for key in keys)
    try:
        for answer in await batch.group(*sets):
            if isinstance(answer, Exception):
                raise answer
    except (RedisError, OSError) as error:
        if not is_full(error):
            raise
        note_full("the cache")
        await batch.call("DEL", *keys)


class RetriedInvalidations:
    FIRST_WAIT_S = 0.1
    MOST_WAIT_S = 2.0

    def __init__(self, write: Callable[[list[str]], Awaitable[None]]) -> None:
        """`write(generation_keys)` invalidates them, raising RedisError or OSError
        when Redis does not take it."""
        self._write = write
        self.longest_ttl_s = 0.0  # raised by every fill: how long a value may live
        self._pending: dict[str, float] = {}  # generation key -> give up at (monotonic)
        self._runner: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, generations: list[str]) -> None:
        give_up_at = time.monotonic() + self.longest_ttl_s
        for key in generations:
            self._pending[key] = max(give_up_at, self._pending.get(key, 0.0))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(
                self._retry(), name="keel-cache-invalidations"
            )

    async def _retry(self) -> None:
        wait = self.FIRST_WAIT_S
        while self._pending:
            await asyncio.sleep(wait)
            now = time.monotonic()
            expired = [key for key, give_up_at in self._pending.items() if give_up_at <= now]
            for key in expired:
                del self._pending[key]
            if expired:
                RETRIED.labels("expired").inc(len(expired))
            keys = list(self._pending)
            if not keys:
                return
            try:
                await self._write(keys)
            except (RedisError, OSError):
                wait = min(wait * 2, self.MOST_WAIT_S)
                continue
            for key in keys:
                self._pending.pop(key, None)
            RETRIED.labels("landed").inc(len(keys))
            logger.info("cache invalidation landed on retry (%d keys)", len(keys))
            wait = self.FIRST_WAIT_S

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._pending:
            logger.error(
                "closing with %d cache invalidations not landed: their values stay"
                " readable until their TTL",
                len(self._pending),
            )
            self._pending.clear()
