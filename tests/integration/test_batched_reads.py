"""Concurrent cache reads go to Redis together (adapters/redis/batching.py):
one round trip for all, each caller still gets exactly its own values, and a
failure reaches every caller of the batch."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.redis.batching import BatchedReads
from adapters.redis.client import create_redis


class _CountingPipelines:
    """The real client, counting the pipelines opened on it."""

    def __init__(self, redis: Redis) -> None:
        self.redis, self.pipelines = redis, 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        return self.redis.pipeline(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.redis, name)


async def test_concurrent_reads_share_one_round_trip_and_get_their_own_values(
    redis: Redis,
) -> None:
    prefix = f"batch:{uuid.uuid4().hex}"
    await redis.mset({f"{prefix}:{i}": f"value-{i}".encode() for i in range(0, 50, 2)})
    counting = _CountingPipelines(redis)
    reads = BatchedReads(counting)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(reads.mget((f"{prefix}:{i}", f"{prefix}:{i + 1}")) for i in range(0, 50, 2))
    )
    assert counting.pipelines == 1
    assert results == [[f"value-{i}".encode(), None] for i in range(0, 50, 2)]
    alone = await reads.mget((f"{prefix}:0",))
    assert (alone, counting.pipelines) == ([b"value-0"], 1), "a read alone is a plain MGET"


async def test_a_cancelled_reader_leaves_the_others_their_answers(redis: Redis) -> None:
    key = f"batch:{uuid.uuid4().hex}"
    await redis.set(key, b"v")
    reads = BatchedReads(redis)
    first = asyncio.ensure_future(reads.mget((key,)))
    second = asyncio.ensure_future(reads.mget((key,)))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == [b"v"]
    assert first.cancelled()


async def test_a_failure_reaches_every_reader_of_the_batch() -> None:
    dead = create_redis("redis://127.0.0.1:1/0", timeout_s=0.05, retries=0, wait_s=0.05)
    reads = BatchedReads(dead)
    results = await asyncio.gather(
        *(reads.mget((f"k{i}",)) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RedisConnectionError) for r in results), results
    with pytest.raises(RedisConnectionError):
        await reads.mget(("again",))
    await dead.aclose()
