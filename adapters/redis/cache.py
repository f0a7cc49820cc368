"""Cache-aside on Redis, per tenant, with no stale read after a write.

Written by hand because the libraries we looked at (cashews, aiocache) have
no compare-on-set against an invalidation generation, and that is what makes
the "slow loader writes an old value after the invalidation" race impossible.
They also key by free-form strings; here a key cannot exist without its
workspace.

A read is one round trip for the generation and the value (a script that,
when no value is stored, also takes the fill lock: a miss costs no second
round trip); a value written under an older generation is a miss. A fill
writes only if the generation is still the one read before loading (a Lua
compare-and-set). `invalidate` sets a new random generation token, so
everything cached before it becomes unreachable at once; a value is a hit
only under the token it was stored with, so a generation key lost to
eviction or failover cannot bring old values back. The keys and the stored
envelope are cache_values.py's.

Stampedes: concurrent misses of one key in a process share one load; across
processes a short Redis lock lets one process load while the others poll
for its value, for a bounded time, then load themselves.

A value msgpack cannot carry (an integer past 64 bits, nesting past its
limit) is stored by nobody: the read raises UnreadableValueError, the fill
lock is released, and the next read loads again.

Redis down or slow never fails a read: the loader answers (cache_outages.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID, uuid4

import msgspec
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError, ResponseError

from adapters.machinery.pipelining import BatchedCommands
from adapters.redis.cache_outages import ERRORS, CacheOutages
from adapters.redis.cache_retries import RetriedInvalidations, new_generations
from adapters.redis.cache_scripts import OVER_BUDGET, READ_OR_LOCK, SET_IF_CURRENT, UNLOCK
from adapters.redis.cache_values import CacheKeys, Envelopes, envelope
from adapters.redis.client import RedisClient
from domain.cache import CacheKey, Hit

T = TypeVar("T")
logger = logging.getLogger("keel.cache")

REQUESTS = Counter(
    "keel_cache_requests", "Cache reads by namespace and result", ["namespace", "result"]
)
OVER_BUDGET_FILLS = Counter(
    "keel_cache_over_budget",
    "Fills not stored: their workspace's cache budget was used up",
    ["namespace"],
)
LOADER_SECONDS = Histogram(
    "keel_cache_loader_seconds", "Time spent in cache loaders (the miss path)", ["namespace"]
)


class RedisCache:
    keeps = True
    GENERATION_TTL_MS = 24 * 3600 * 1000
    LOCK_TTL_S = 5.0
    LOCK_WAIT_S = 0.5
    POLL_S = 0.01
    JITTER = 0.1

    def __init__(
        self, redis: RedisClient, prefix: str = "keel", bytes_per_workspace: int = 4 * 1024 * 1024
    ) -> None:
        """`bytes_per_workspace`: what one workspace may keep cached (cache_scripts.py)."""
        self._batch = BatchedCommands(redis)
        self._prefix = prefix
        self._budget = bytes_per_workspace
        self._set_if_current = redis.register_script(SET_IF_CURRENT)
        self._unlock = redis.register_script(UNLOCK)
        self._read_or_lock = redis.register_script(READ_OR_LOCK)
        self._flights: dict[str, asyncio.Task[Any]] = {}
        self._envelopes = Envelopes()
        self.outages = CacheOutages()
        self.retries = RetriedInvalidations(self._write_generations)
        self._lock_tokens, self._lock_count = uuid4().hex, itertools.count()

    async def _write_generations(self, keys: list[str]) -> None:
        await new_generations(self._batch, keys, self.GENERATION_TTL_MS)

    def _keys(self, key: CacheKey) -> CacheKeys:
        return CacheKeys.of(self._prefix, key)

    async def get_or_set(
        self,
        key: CacheKey,
        loader: Callable[[], Awaitable[T | None]],
        *,
        type_: type[T],
        ttl_s: float,
        negative_ttl_s: float | None = None,
    ) -> T | None:
        keys = self._keys(key)
        self.retries.longest_ttl_s = max(self.retries.longest_ttl_s, ttl_s * (1 + self.JITTER))
        flight = self._flights.get(keys.value)
        if flight is None:
            flight = asyncio.ensure_future(self._fetch(keys, loader, type_, ttl_s, negative_ttl_s))
            self._flights[keys.value] = flight
            flight.add_done_callback(
                lambda done: (
                    self._flights.pop(keys.value) if self._flights.get(keys.value) is done else None
                )
            )
        result: T | None = await asyncio.shield(flight)
        return result

    async def peek(self, *reads: tuple[CacheKey, type[Any]]) -> list[Hit[Any] | None]:
        keys = [self._keys(key) for key, _ in reads]
        try:
            raw = await self._mget(*(name for k in keys for name in (k.generation, k.value)))
        except (RedisError, OSError) as error:
            self._unavailable("read", keys[0], error)
            return [None] * len(reads)
        found: list[Hit[Any] | None] = []
        for index, (k, (_, type_)) in enumerate(zip(keys, reads, strict=True)):
            hit, value = self._decode(raw[2 * index], raw[2 * index + 1], type_)
            if hit:
                REQUESTS.labels(k.namespace, "hit").inc()
            found.append(Hit(value) if hit else None)
        return found

    async def invalidate(self, workspace_id: UUID, *namespaces: str) -> None:
        # A fill that began before this must not be joined by later readers.
        stale = tuple(
            self._keys(CacheKey(workspace_id, namespace, "x")).value[:-1]
            for namespace in namespaces
        )
        for key in [key for key in self._flights if key.startswith(stale)]:
            del self._flights[key]
        generations = [self._keys(CacheKey(workspace_id, n, "x")).generation for n in namespaces]
        try:
            await self._write_generations(generations)
        except (RedisError, OSError) as error:
            # The values stay reachable until it lands: say so loudly.
            ERRORS.labels("invalidate").inc()
            logger.error(
                "cache invalidation failed for %s %s: %r; retrying", workspace_id, namespaces, error
            )
            self.retries.add(generations)

    async def _fetch(
        self,
        keys: CacheKeys,
        loader: Callable[[], Awaitable[T | None]],
        type_: type[T],
        ttl_s: float,
        negative_ttl_s: float | None,
    ) -> T | None:
        # Every read may take the lock, so every read needs a token: unique
        # across processes (a random prefix) without a random draw per read.
        token = f"{self._lock_tokens}.{next(self._lock_count)}"
        lock_ms = int(self.LOCK_TTL_S * 1000)
        try:
            self.outages.check()
            try:
                raw_generation, raw_value, locked = await self._batch.script(
                    self._read_or_lock, [keys.generation, keys.value, keys.lock], [token, lock_ms]
                )
            except ResponseError:
                # Refused, not unreachable (an out-of-memory Redis refuses a script
                # that may write): read alone, and lock below as for a stale value.
                raw_generation, raw_value = await self._batch.mget((keys.generation, keys.value))
                locked = None
        except (RedisError, OSError) as error:
            self._unavailable("read", keys, error)
            return await self._load(keys, loader)
        hit, value = self._decode(raw_generation, raw_value, type_)
        if hit:  # (a hit has a value: the script took no lock)
            REQUESTS.labels(keys.namespace, "hit").inc()
            return value
        REQUESTS.labels(keys.namespace, "miss").inc()
        generation = raw_generation.decode() if raw_generation else ""
        if locked is None or raw_value is not None:  # the script took no lock
            try:
                locked = await self._batch.call("SET", keys.lock, token, "NX", "PX", lock_ms)
            except (RedisError, OSError) as error:
                self._unavailable("lock", keys, error)
                return await self._load(keys, loader)
        if not locked:
            token = ""
            found = await self._wait_for_fill(keys, type_)
            if found is not None:
                return found[0]
        released = False
        try:
            value = await self._load(keys, loader)
            ttl = negative_ttl_s if value is None else ttl_s
            if ttl is not None:
                released = await self._store(keys, generation, value, ttl, token)
            return value
        finally:
            if token and not released:
                await self._release(keys, token)

    async def _read(self, keys: CacheKeys, type_: type[T]) -> tuple[str, bool, T | None]:
        raw_generation, raw_value = await self._mget(keys.generation, keys.value)
        hit, value = self._decode(raw_generation, raw_value, type_)
        return (raw_generation.decode() if raw_generation else ""), hit, value

    async def _mget(self, *names: str) -> list[bytes | None]:
        self.outages.check()
        return await self._batch.mget(names)

    def _decode(
        self, raw_generation: bytes | None, raw_value: bytes | None, type_: type[T]
    ) -> tuple[bool, T | None]:
        """(hit, value) of what a read found (cache_values.py: when it is a hit)."""
        try:
            return self._envelopes.open(raw_generation, raw_value, type_)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            # Redis answered: a miss, which the fill overwrites; reads do not pause.
            ERRORS.labels("decode").inc()
            logger.warning("cached value unreadable as %r: %r; treated as a miss", type_, error)
            return False, None

    async def _wait_for_fill(self, keys: CacheKeys, type_: type[T]) -> tuple[T | None] | None:
        """Another process is loading: poll for its value, for a bounded time."""
        deadline = time.monotonic() + self.LOCK_WAIT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(self.POLL_S)
            try:
                _, hit, value = await self._read(keys, type_)
            except (RedisError, OSError) as error:
                self._unavailable("read", keys, error)
                return None
            if hit:
                return (value,)
        return None

    async def _load(self, keys: CacheKeys, loader: Callable[[], Awaitable[T | None]]) -> T | None:
        started = time.perf_counter()
        try:
            return await loader()
        finally:
            LOADER_SECONDS.labels(keys.namespace).observe(time.perf_counter() - started)

    async def _store(
        self, keys: CacheKeys, generation: str, value: object, ttl_s: float, lock_token: str
    ) -> bool:
        """Store the value if its generation is still current, and release the
        lock held with `lock_token` ('' for none); False if Redis failed (the
        lock is then still to release)."""
        token = generation or uuid4().hex
        stored = envelope(token, value)
        ttl_ms = int(ttl_s * 1000 * random.uniform(1 - self.JITTER, 1 + self.JITTER))  # noqa: S311
        try:
            answer = await self._batch.script(
                self._set_if_current,
                [keys.generation, keys.value, keys.lock, *keys.budget],
                [
                    generation,
                    stored,
                    max(ttl_ms, 1),
                    self.GENERATION_TTL_MS,
                    token,
                    lock_token,
                    self._budget,
                ],
            )
        except (RedisError, OSError) as error:
            self._unavailable("write", keys, error)
            return False
        if answer == OVER_BUDGET:
            OVER_BUDGET_FILLS.labels(keys.namespace).inc()
        return True

    async def _release(self, keys: CacheKeys, token: str) -> None:
        try:
            await self._batch.script(self._unlock, [keys.lock], [token])
        except (RedisError, OSError) as error:
            self._unavailable("unlock", keys, error)

    def _unavailable(self, operation: str, keys: CacheKeys, error: BaseException) -> None:
        if operation == "read":
            REQUESTS.labels(keys.namespace, "error").inc()
        self.outages.failed(operation, keys.value, error)
