"""Cache-aside on Redis, per tenant, with no stale read after a write.

Written by hand because the libraries we looked at (cashews, aiocache) have
no compare-on-set against an invalidation generation, and that is what makes
the "slow loader writes an old value after the invalidation" race impossible.
They also key by free-form strings; here a key cannot exist without its
workspace.

Layout (the `{ws:<uuid>}` hash tag keeps a workspace's keys in one Redis
Cluster slot, so the multi-key reads and scripts below work there too):

    keel:{ws:<uuid>}:gen:<namespace>         invalidation generation (a random token)
    keel:{ws:<uuid>}:v:<namespace>:<name>    msgpack [generation, payload (nil: not found)]
    keel:{ws:<uuid>}:lock:<namespace>:<name> fill lock across processes
    keel:{ws:<uuid>}:cache-…                 what the workspace has cached, and its
                                             charges (cache_scripts.py: the budget)

A read is one round trip for the generation and the value (a script that,
when no value is stored, also takes the fill lock: a miss costs no second
round trip); a value written under an older generation is a miss. A fill
writes only if the generation is still the one read before loading (a Lua
compare-and-set). `invalidate` sets a new
random generation token, so everything cached before it becomes unreachable
at once; a value is a hit only under the token it was stored with, so a
generation key lost to eviction or failover cannot bring old values back.

Stampedes: concurrent misses of one key in a process share one load; across
processes a short Redis lock lets one process load while the others poll
for its value, for a bounded time, then load themselves.

A value msgpack cannot carry (an integer past 64 bits, nesting past its
limit) is stored by nobody: the read raises UnreadableValueError, the fill
lock is released, and the next read loads again.

Redis down or slow (the client's timeout, 50 ms by default) never fails a
read: the loader's value is returned uncached, counted and logged. A full
Redis (out of memory: it refuses writes, not deletes) serves hits and
refuses fills alike; an invalidation it refuses to write deletes the
generation instead, which makes everything cached under it a miss too. After a
failed read, reads skip Redis for READ_PAUSE_S, so that a request (whose
membership, document and fill would each wait out the timeout) and the
ones behind it go straight to the loader; invalidations are always tried.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID, uuid4

import msgspec
from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from adapters.machinery.pipelining import BatchedCommands
from adapters.redis.cache_scripts import OVER_BUDGET, READ_OR_LOCK, SET_IF_CURRENT, UNLOCK
from adapters.redis.client import is_full, note_full
from domain.cache import CacheKey, Hit
from domain.errors import UnreadableValueError

T = TypeVar("T")
logger = logging.getLogger("keel.cache")

REQUESTS = Counter(
    "keel_cache_requests", "Cache reads by namespace and result", ["namespace", "result"]
)
ERRORS = Counter("keel_cache_errors", "Cache operations that failed on Redis", ["operation"])
OVER_BUDGET_FILLS = Counter(
    "keel_cache_over_budget",
    "Fills not stored: their workspace's cache budget was used up",
    ["namespace"],
)
LOADER_SECONDS = Histogram(
    "keel_cache_loader_seconds", "Time spent in cache loaders (the miss path)", ["namespace"]
)

_ENVELOPE = msgspec.msgpack.Decoder(tuple[str, msgspec.Raw])
_ENCODER = msgspec.msgpack.Encoder()
_NIL = _ENCODER.encode(None)


class _ReadsPausedError(RedisError):
    """Reads skip Redis for a moment after one failed."""


@dataclass(frozen=True, slots=True)
class _Keys:
    generation: str
    value: str
    lock: str
    namespace: str
    base: str

    @property
    def budget(self) -> list[str]:
        """The workspace's ledger, charges and total (cache_scripts.py)."""
        return [f"{self.base}:cache-ledger", f"{self.base}:cache-bytes", f"{self.base}:cache-total"]


class RedisCache:
    GENERATION_TTL_MS = 24 * 3600 * 1000
    LOCK_TTL_S = 5.0
    LOCK_WAIT_S = 0.5
    POLL_S = 0.01
    JITTER = 0.1
    LOG_EVERY_S = 10.0
    READ_PAUSE_S = 1.0

    def __init__(
        self, redis: Redis, prefix: str = "keel", bytes_per_workspace: int = 4 * 1024 * 1024
    ) -> None:
        """`bytes_per_workspace`: what one workspace may keep cached (cache_scripts.py)."""
        self._batch = BatchedCommands(redis)
        self._prefix = prefix
        self._budget = bytes_per_workspace
        self._set_if_current = redis.register_script(SET_IF_CURRENT)
        self._unlock = redis.register_script(UNLOCK)
        self._read_or_lock = redis.register_script(READ_OR_LOCK)
        self._flights: dict[str, asyncio.Task[Any]] = {}
        self._decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}
        self._last_log = 0.0
        self._reads_paused_until = 0.0
        self._lock_tokens, self._lock_count = uuid4().hex, itertools.count()

    def _keys(self, key: CacheKey) -> _Keys:
        base = f"{self._prefix}:{{ws:{key.workspace_id}}}"
        return _Keys(
            generation=f"{base}:gen:{key.namespace}",
            value=f"{base}:v:{key.namespace}:{key.name}",
            lock=f"{base}:lock:{key.namespace}:{key.name}",
            namespace=key.namespace,
            base=base,
        )

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
        sets = (("SET", key, uuid4().hex, "PX", self.GENERATION_TTL_MS) for key in generations)
        try:
            for answer in await self._batch.group(*sets):
                if isinstance(answer, Exception):
                    raise answer
        except (RedisError, OSError) as error:
            if is_full(error) and await self._delete(generations):
                return
            # The values stay reachable until their TTL: say so loudly.
            ERRORS.labels("invalidate").inc()
            logger.error("cache invalidation failed for %s %s: %r", workspace_id, namespaces, error)

    async def _delete(self, generations: list[str]) -> bool:
        """Delete generation keys (a full Redis still deletes); False if that failed too."""
        note_full("the cache")
        try:
            await self._batch.call("DEL", *generations)
        except (RedisError, OSError):
            return False
        return True

    async def _fetch(
        self,
        keys: _Keys,
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
            self._check_pause()
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

    async def _read(self, keys: _Keys, type_: type[T]) -> tuple[str, bool, T | None]:
        raw_generation, raw_value = await self._mget(keys.generation, keys.value)
        hit, value = self._decode(raw_generation, raw_value, type_)
        return (raw_generation.decode() if raw_generation else ""), hit, value

    async def _mget(self, *names: str) -> list[bytes | None]:
        self._check_pause()
        return await self._batch.mget(names)

    def _check_pause(self) -> None:
        if time.monotonic() < self._reads_paused_until:
            raise _ReadsPausedError("a read failed a moment ago")

    def _decode(
        self, raw_generation: bytes | None, raw_value: bytes | None, type_: type[T]
    ) -> tuple[bool, T | None]:
        """(hit, value) of a stored envelope read with its namespace's generation.

        No generation, no hit: a value can only match the random token that was
        current when it was stored, so an evicted or lost generation key can
        never bring an older value back.
        """
        if raw_value is None or raw_generation is None:
            return False, None
        try:
            stored_generation, payload = _ENVELOPE.decode(raw_value)
            if stored_generation != raw_generation.decode():
                return False, None
            if bytes(payload) == _NIL:
                return True, None
            return True, self._decoder(type_).decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            # Redis answered: a miss, which the fill overwrites; reads do not pause.
            ERRORS.labels("decode").inc()
            logger.warning("cached value unreadable as %r: %r; treated as a miss", type_, error)
            return False, None

    async def _wait_for_fill(self, keys: _Keys, type_: type[T]) -> tuple[T | None] | None:
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

    async def _load(self, keys: _Keys, loader: Callable[[], Awaitable[T | None]]) -> T | None:
        started = time.perf_counter()
        try:
            return await loader()
        finally:
            LOADER_SECONDS.labels(keys.namespace).observe(time.perf_counter() - started)

    async def _store(
        self, keys: _Keys, generation: str, value: object, ttl_s: float, lock_token: str
    ) -> bool:
        """Store the value if its generation is still current, and release the
        lock held with `lock_token` ('' for none); False if Redis failed (the
        lock is then still to release)."""
        token = generation or uuid4().hex
        try:
            payload = _ENCODER.encode(value)
        except (msgspec.EncodeError, OverflowError, RecursionError, TypeError, ValueError) as error:
            raise UnreadableValueError(f"the value cannot be cached ({error})") from None
        envelope = _ENCODER.encode((token, msgspec.Raw(payload)))
        ttl_ms = int(ttl_s * 1000 * random.uniform(1 - self.JITTER, 1 + self.JITTER))  # noqa: S311
        try:
            answer = await self._batch.script(
                self._set_if_current,
                [keys.generation, keys.value, keys.lock, *keys.budget],
                [
                    generation,
                    envelope,
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

    async def _release(self, keys: _Keys, token: str) -> None:
        try:
            await self._batch.script(self._unlock, [keys.lock], [token])
        except (RedisError, OSError) as error:
            self._unavailable("unlock", keys, error)

    def _decoder(self, type_: Any) -> msgspec.msgpack.Decoder[Any]:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.msgpack.Decoder(type_)
        return decoder

    def _unavailable(self, operation: str, keys: _Keys, error: BaseException) -> None:
        ERRORS.labels(operation).inc()
        if is_full(error):
            note_full("the cache")
        if operation == "read":
            REQUESTS.labels(keys.namespace, "error").inc()
            if not isinstance(error, _ReadsPausedError):
                self._reads_paused_until = time.monotonic() + self.READ_PAUSE_S
        now = time.monotonic()
        if now - self._last_log >= self.LOG_EVERY_S:
            self._last_log = now
            logger.warning(
                "cache unavailable (%s %s): %r; serving from Postgres", operation, keys.value, error
            )


class PassThroughCache:
    """The Cache port with caching switched off (KEEL_CACHE=false): every read loads."""

    async def get_or_set(
        self,
        key: CacheKey,
        loader: Callable[[], Awaitable[T | None]],
        *,
        type_: type[T],
        ttl_s: float,
        negative_ttl_s: float | None = None,
    ) -> T | None:
        return await loader()

    async def peek(self, *reads: tuple[CacheKey, type[Any]]) -> list[Hit[Any] | None]:
        return [None] * len(reads)

    async def invalidate(self, workspace_id: UUID, *namespaces: str) -> None:
        return None
