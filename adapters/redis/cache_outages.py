"""What the cache does when Redis fails it (adapters/redis/cache.py).

Redis down or slow (the client's timeout, 50 ms by default) never fails a
read: the loader's value is returned uncached, counted and logged (one line
per LOG_EVERY_S). A full Redis (out of memory: it refuses writes, not
deletes) serves hits and refuses fills alike; an invalidation it refuses to
write deletes the generation instead, which makes everything cached under it
a miss too. After a failed read, reads skip Redis for `read_pause_s`, so that
a request (whose membership, document and fill would each wait out the
timeout) and the ones behind it go straight to the loader; invalidations are
always tried.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter
from redis.exceptions import RedisError

from adapters.redis.client import is_full, note_full

logger = logging.getLogger("keel.cache")

ERRORS = Counter("keel_cache_errors", "Cache operations that failed on Redis", ["operation"])


class ReadsPausedError(RedisError):
    """Reads skip Redis for a moment after one failed."""


class CacheOutages:
    LOG_EVERY_S = 10.0

    def __init__(self, read_pause_s: float = 1.0) -> None:
        self.read_pause_s = read_pause_s
        self.paused_until = 0.0  # reads skip Redis until then (time.monotonic)
        self._last_log = 0.0

    def check(self) -> None:
        """Raises ReadsPausedError while reads skip Redis."""
        if time.monotonic() < self.paused_until:
            raise ReadsPausedError("a read failed a moment ago")

    def failed(self, operation: str, key: str, error: BaseException) -> None:
        """`operation` on `key` failed on Redis (a failed read pauses reads)."""
        ERRORS.labels(operation).inc()
        if is_full(error):
            note_full("the cache")
        if operation == "read" and not isinstance(error, ReadsPausedError):
            self.paused_until = time.monotonic() + self.read_pause_s
        now = time.monotonic()
        if now - self._last_log >= self.LOG_EVERY_S:
            self._last_log = now
            logger.warning(
                "cache unavailable (%s %s): %r; serving from Postgres", operation, key, error
            )
