"""Concurrent cache reads go to Redis together (adapters/machinery/pipelining.py):
one round trip for all, each caller still gets exactly its own values, and a
failure reaches every caller of the batch."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.machinery.pipelining import BatchedCommands
from adapters.redis.client import create_redis
from tests.counting import CountingCalls


async def test_concurrent_reads_share_one_round_trip_and_get_their_own_values(
    redis: Redis,
) -> None:
    prefix = f"{{batch:{uuid.uuid4().hex}}}"  # one slot: each MGET works on a cluster too
    await redis.mset({f"{prefix}:{i}": f"value-{i}".encode() for i in range(0, 50, 2)})
    counting = CountingCalls(redis, "pipeline")
    reads = BatchedCommands(counting)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(reads.mget((f"{prefix}:{i}", f"{prefix}:{i + 1}")) for i in range(0, 50, 2))
    )
    assert counting.calls["pipeline"] == 1
    assert results == [[f"value-{i}".encode(), None] for i in range(0, 50, 2)]
    alone = await reads.mget((f"{prefix}:0",))
    assert (alone, counting.calls["pipeline"]) == ([b"value-0"], 1), "a read alone is a plain MGET"


async def test_a_cancelled_reader_leaves_the_others_their_answers(redis: Redis) -> None:
    key = f"batch:{uuid.uuid4().hex}"
    await redis.set(key, b"v")
    reads = BatchedCommands(redis)
    first = asyncio.ensure_future(reads.mget((key,)))
    second = asyncio.ensure_future(reads.mget((key,)))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == [b"v"]
    assert first.cancelled()


async def test_a_failure_reaches_every_reader_of_the_batch() -> None:
    dead = create_redis("redis://127.0.0.1:1/0", timeout_s=0.05, retries=0, wait_s=0.05)
    reads = BatchedCommands(dead)
    results = await asyncio.gather(
        *(reads.mget((f"k{i}",)) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RedisConnectionError) for r in results), results
    with pytest.raises(RedisConnectionError):
        await reads.mget(("again",))
    await dead.aclose()


def test_reads_left_by_a_stopped_event_loop_do_not_hold_up_the_next_one(services: Any) -> None:
    """An event loop that stops between a read and its send (a shutdown) must
    not leave the reader without sends on the next loop."""
    redis = create_redis(services.redis_url, cluster=services.redis_cluster)
    reads = BatchedCommands(redis)
    orphans: list[asyncio.Future[Any]] = []

    async def read_and_stop() -> None:
        orphans.append(asyncio.ensure_future(reads.mget(("orphan",))))
        await asyncio.sleep(0)  # the read is queued, its send scheduled...
        asyncio.get_running_loop().stop()  # ...and never run

    stopping = asyncio.new_event_loop()
    started = stopping.create_task(read_and_stop())
    stopping.run_forever()
    assert started.done()
    assert not orphans[0].done(), "the read must still be waiting for its send"

    async def read() -> list[bytes | None]:
        try:
            return await asyncio.wait_for(reads.mget(("next",)), 5)
        finally:
            await redis.aclose()

    assert asyncio.run(read()) == [None]
    orphans[0].cancel()
    stopping.run_until_complete(asyncio.sleep(0))
    stopping.close()
