"""Batched cache reads and the read pause when things go wrong, against the real Redis:
answers never cross between readers, every reader is answered whatever
happens to the batch, and the pause only ever sends reads to the loader."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from adapters.machinery.pipelining import BatchedCommands
from adapters.redis.cache import RedisCache
from adapters.redis.client import create_redis
from domain.cache import CacheKey
from entrypoints.devstack.services import Services
from tests.conftest import People
from tests.counting import CountingCalls


def _key(workspace: uuid.UUID | None = None, name: str = "doc") -> CacheKey:
    return CacheKey(workspace or uuid.uuid4(), "review", name)


def _errors(operation: str) -> float:
    return REGISTRY.get_sample_value("keel_cache_errors_total", {"operation": operation}) or 0.0


@pytest.fixture
async def own_cache(services: Services) -> AsyncIterator[RedisCache]:
    """A cache of its own, so that its read pause touches no other test."""
    client = create_redis(services.redis_url, timeout_s=0.05, retries=0)
    yield RedisCache(client)
    await client.aclose()


async def test_one_failing_command_fails_only_its_own_reader(
    redis: Redis, services: Services
) -> None:
    """An error answer for one MGET of the pipeline (here an ACL refusal of
    one reader's key) belongs to that reader alone: the others get their values."""
    prefix = f"review:{uuid.uuid4().hex}"
    user, password = f"review-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis.mset({f"{prefix}:ok:{i}": f"v{i}".encode() for i in range(4)})
    await redis.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", f"~{prefix}:ok:*", "+@all"
    )
    limited = Redis.from_url(services.redis_url, username=user, password=password)
    try:
        reads = BatchedCommands(limited)
        results = await asyncio.gather(
            reads.mget((f"{prefix}:ok:0",)),
            reads.mget((f"{prefix}:refused",)),
            reads.mget((f"{prefix}:ok:2", f"{prefix}:ok:3")),
            return_exceptions=True,
        )
    finally:
        await limited.aclose()
        await redis.execute_command("ACL", "DELUSER", user)
    assert isinstance(results[1], ResponseError), results
    assert results[0] == [b"v0"]
    assert results[2] == [b"v2", b"v3"]


async def test_a_batch_cancelled_before_it_runs_still_answers_its_readers(redis: Redis) -> None:
    """Whoever cancels the sending task (a loop shutting down), a reader that
    was not cancelled itself gets an answer: a Redis error, so it loads."""
    reads = BatchedCommands(redis)
    readers = [asyncio.ensure_future(reads.mget((f"k{i}",))) for i in range(3)]
    await asyncio.sleep(0)  # the readers queue their reads; the send is scheduled
    await asyncio.sleep(0)  # the send has run: its task exists, not yet started
    assert len(reads._batches._sending) == 1
    for task in reads._batches._sending:
        task.cancel()
    done, _ = await asyncio.wait(readers, timeout=2)
    assert len(done) == 3, "readers left waiting forever"
    for reader in readers:
        assert isinstance(reader.exception(), RedisError)
    await asyncio.sleep(0)
    assert not reads._batches._sending


async def test_a_batch_cancelled_in_flight_answers_its_readers_with_a_redis_error(
    services: Services, redis: Redis
) -> None:
    client = create_redis(services.redis_url, timeout_s=5, retries=0)
    reads = BatchedCommands(client)
    readers = [asyncio.ensure_future(reads.mget((f"k{i}",))) for i in range(3)]
    await redis.execute_command("CLIENT", "PAUSE", "300", "ALL")
    try:
        await asyncio.sleep(0.05)  # the pipeline is waiting on Redis
        assert len(reads._batches._sending) == 1
        for task in reads._batches._sending:
            task.cancel()
        done, _ = await asyncio.wait(readers, timeout=2)
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
    assert len(done) == 3
    for reader in readers:
        assert not reader.cancelled(), "a reader nobody cancelled must not be cancelled"
        assert isinstance(reader.exception(), RedisError)
    await client.aclose()


async def test_many_batches_leave_nothing_behind(redis: Redis) -> None:
    reads = BatchedCommands(redis)
    for _ in range(50):
        await asyncio.gather(*(reads.mget((f"k{i}",)) for i in range(5)))
    await asyncio.sleep(0)
    assert not reads._batches._sending
    assert not reads._batches._waiting


async def test_a_read_batched_with_an_invalidation_never_caches_an_older_value(
    cache: RedisCache,
) -> None:
    """A fill whose read is queued in the same turn as an invalidation, its
    loader answering with what the database held before the write."""
    key = _key()
    for _ in range(20):
        await cache.invalidate(key.workspace_id, key.namespace)
        started = asyncio.Event()
        gate = asyncio.Event()

        async def old(started: asyncio.Event = started, gate: asyncio.Event = gate) -> str:
            started.set()
            await gate.wait()
            return "old"

        fill = asyncio.ensure_future(cache.get_or_set(key, old, type_=str, ttl_s=60))
        await asyncio.sleep(0)  # its read is queued, not sent
        await started.wait()  # it read a miss and its loader is reading the database
        await cache.invalidate(key.workspace_id, key.namespace)  # the write committed
        gate.set()
        assert await fill == "old"

        async def new() -> str:
            return "new"

        assert await cache.get_or_set(key, new, type_=str, ttl_s=60) == "new"


async def test_a_corrupt_cached_value_is_a_miss_not_a_failure(
    own_cache: RedisCache, redis: Redis
) -> None:
    """An undecodable value (corrupted, or written by an older schema) is a
    Redis that works: a counted miss that the fill overwrites; no pause."""
    key = _key()

    async def load() -> str:
        return "fresh"

    assert await own_cache.get_or_set(key, load, type_=str, ttl_s=60) == "fresh"
    value_key = own_cache._keys(key).value
    await redis.set(value_key, b"\xc1garbage", keepttl=True)
    before = _errors("decode")
    assert await own_cache.peek((key, str)) == [None]
    assert await own_cache.get_or_set(_key(key.workspace_id), load, type_=str, ttl_s=60)
    assert own_cache.outages.paused_until == 0.0, "Redis answered: reads must not pause"
    assert await own_cache.get_or_set(key, load, type_=str, ttl_s=60) == "fresh"
    assert _errors("decode") == before + 2
    assert (await own_cache.peek((key, str)))[0] is not None, "the fill replaced it"
    # a value of another type than asked (an older schema) behaves the same
    await redis.set(value_key, b"\xc1garbage", keepttl=True)
    assert await own_cache.get_or_set(key, load, type_=str, ttl_s=60) == "fresh"
    hit = await own_cache.peek((key, int))
    assert hit == [None]


async def test_a_pause_ends_although_reads_keep_coming(services: Services, redis: Redis) -> None:
    client = create_redis(services.redis_url, timeout_s=0.05, retries=0)
    counting = CountingCalls(client, "execute_command", "pipeline")
    cache = RedisCache(counting)  # type: ignore[arg-type]
    cache.outages.read_pause_s = 0.3
    key = _key()

    async def load() -> str:
        return "loaded"

    await redis.execute_command("CLIENT", "PAUSE", "150", "ALL")
    try:
        assert await cache.get_or_set(key, load, type_=str, ttl_s=60) == "loaded"
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
    errors = _errors("read")
    sent = counting.calls["execute_command"] + counting.calls["pipeline"]
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # skipped reads, continuously
        assert await cache.get_or_set(key, load, type_=str, ttl_s=60) == "loaded"
        await asyncio.sleep(0.01)
    assert counting.calls["execute_command"] + counting.calls["pipeline"] > sent, "the pause ended"
    assert _errors("read") > errors, "skipped reads are counted"
    assert await cache.peek((key, str)) != [None], "and the cache filled again"
    await client.aclose()


async def test_a_batch_failure_counts_one_error_per_read_and_pauses(
    own_cache: RedisCache, redis: Redis
) -> None:
    before = _errors("read")
    keys = [_key() for _ in range(5)]

    async def load() -> str:
        return "x"

    await redis.execute_command("CLIENT", "PAUSE", "200", "ALL")
    try:
        results = await asyncio.gather(
            *(own_cache.get_or_set(k, load, type_=str, ttl_s=60) for k in keys)
        )
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
    assert results == ["x"] * 5
    assert _errors("read") == before + 5
    assert own_cache.outages.paused_until > time.monotonic()
    assert await own_cache.peek((keys[0], str)) == [None], "paused: nothing read, nothing stale"


async def test_the_fast_path_hands_a_paused_read_to_the_full_path(
    client: httpx.AsyncClient, people: People, redis: Redis
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    document = await people.document(
        workspace, owner, {"kind": "brand", "title": "T", "content": {"tone": "warm"}, "tags": []}
    )
    url = f"/v1/workspaces/{workspace}/foundation/{document}"
    first = await client.get(url, headers=owner.headers)
    assert first.status_code == 200
    answered = REGISTRY.get_sample_value("keel_hot_reads_total") or 0.0
    await redis.execute_command("CLIENT", "PAUSE", "200", "ALL")
    try:
        stalled = await client.get(url, headers=owner.headers)
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
    paused = await client.get(url, headers=owner.headers)  # within the read pause
    assert (stalled.status_code, paused.status_code) == (200, 200)
    assert stalled.content == paused.content == first.content
    assert (REGISTRY.get_sample_value("keel_hot_reads_total") or 0.0) == answered
    deadline = time.monotonic() + 3
    while (REGISTRY.get_sample_value("keel_hot_reads_total") or 0.0) == answered:
        assert time.monotonic() < deadline, "the pause must end and the fast path answer again"
        await asyncio.sleep(0.1)
        assert (await client.get(url, headers=owner.headers)).content == first.content
