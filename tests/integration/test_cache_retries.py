"""A cache invalidation Redis did not take is not given up: it is written again
until it lands (adapters/redis/cache_retries.py), so a value it hides is not
served until its TTL; and it is given up once every such value has expired."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.redis.cache import RedisCache
from adapters.redis.cache_retries import RetriedInvalidations
from domain.cache import CacheKey, Hit
from tests.redis_cluster import standalone_redis

GIVE_UP_S = 10.0


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GIVE_UP_S
    while not condition():
        assert time.monotonic() < deadline, "not within the time given"
        await asyncio.sleep(0.02)


def _value(value: str) -> Callable[[], Awaitable[str]]:
    async def load() -> str:
        return value

    return load


@standalone_redis  # CLIENT PAUSE of the one server
async def test_an_invalidation_during_a_stall_lands_once_redis_answers(
    cache: RedisCache, redis: Redis
) -> None:
    workspace = uuid.uuid4()
    key = CacheKey(workspace, "members", "someone")
    assert await cache.get_or_set(key, _value("owner"), type_=str, ttl_s=60) == "owner"
    await redis.execute_command("CLIENT", "PAUSE", "600", "WRITE")
    try:
        await cache.invalidate(workspace, "members")  # times out: writes are held
        assert cache.retries.pending == 1
        # Reads still work meanwhile, and still see what the invalidation hides.
        assert await cache.peek((key, str)) == [Hit("owner")]
    finally:
        await _until(lambda: cache.retries.pending == 0)  # the pause ends by itself
    assert await cache.peek((key, str)) == [None], "the old value is gone"


async def test_retries_are_merged_and_stop_when_they_land() -> None:
    writes: list[list[str]] = []
    failing = 3

    async def write(keys: list[str]) -> None:
        nonlocal failing
        writes.append(sorted(keys))
        if failing:
            failing -= 1
            raise RedisConnectionError("down")

    retries = RetriedInvalidations(write)
    retries.longest_ttl_s = 60
    retries.add(["g:a", "g:b"])
    retries.add(["g:b", "g:c"])
    await _until(lambda: retries.pending == 0)
    assert writes == [["g:a", "g:b", "g:c"]] * 4, "one write of every pending key each time"
    await retries.close()


async def test_a_retry_is_given_up_once_the_values_it_hides_have_expired() -> None:
    tries = 0

    async def write(keys: list[str]) -> None:
        nonlocal tries
        tries += 1
        raise OSError("unreachable")

    retries = RetriedInvalidations(write)
    retries.longest_ttl_s = 0.5
    retries.add(["g:a"])
    await _until(lambda: retries.pending == 0)
    assert tries >= 1
    await retries.close()


async def test_closing_drops_what_did_not_land() -> None:
    async def write(keys: list[str]) -> None:
        raise OSError("unreachable")

    retries = RetriedInvalidations(write)
    retries.longest_ttl_s = 60
    retries.add(["g:a"])
    await retries.close()
    assert retries.pending == 0
