"""RedisCache against a real Redis: hits, misses, invalidation, stampedes,
the slow-loader race, negative caching, tenants, and a Redis that stalls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from adapters.redis.cache import RedisCache
from adapters.redis.client import create_redis
from domain.cache import CacheKey
from entrypoints.devstack.services import Services
from tests.counting import CountingCalls
from tests.redis_cluster import standalone_redis


def _key(workspace: uuid.UUID | None = None, name: str = "doc") -> CacheKey:
    return CacheKey(workspace or uuid.uuid4(), "test", name)


class Loader:
    """Counts its calls; optionally waits for `gate` before answering."""

    def __init__(self, value: object, gate: asyncio.Event | None = None) -> None:
        self.value, self.gate, self.calls = value, gate, 0
        self.started = asyncio.Event()

    async def __call__(self) -> object:
        self.calls += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        return self.value


@pytest.fixture
async def second_process(services: Services) -> AsyncIterator[RedisCache]:
    """Another RedisCache on its own connection pool, as another process would have."""
    client = create_redis(
        services.redis_url, cluster=services.redis_cluster, timeout_s=0.05, retries=0
    )
    yield RedisCache(client)
    await client.aclose()


async def test_miss_then_hit_then_invalidated(cache: RedisCache) -> None:
    key, loader = _key(), Loader({"v": 1})
    for _ in range(3):
        assert await cache.get_or_set(key, loader, type_=dict, ttl_s=60) == {"v": 1}
    assert loader.calls == 1
    await cache.invalidate(key.workspace_id, key.namespace)
    loader.value = {"v": 2}
    assert await cache.get_or_set(key, loader, type_=dict, ttl_s=60) == {"v": 2}
    assert loader.calls == 2


async def test_invalidation_is_per_workspace_and_namespace(cache: RedisCache) -> None:
    workspace = uuid.uuid4()
    mine, other_namespace = _key(workspace), CacheKey(workspace, "other", "doc")
    elsewhere = _key(uuid.uuid4())
    loaders = {k: Loader(str(k)) for k in (mine, other_namespace, elsewhere)}
    for key, loader in loaders.items():
        await cache.get_or_set(key, loader, type_=str, ttl_s=60)
    await cache.invalidate(workspace, "test")
    for key, loader in loaders.items():
        assert await cache.get_or_set(key, loader, type_=str, ttl_s=60) == str(key)
    assert [loaders[k].calls for k in (mine, other_namespace, elsewhere)] == [2, 1, 1]


async def test_same_name_in_two_workspaces_never_mixes(cache: RedisCache) -> None:
    name = str(uuid.uuid4())
    first, second = _key(uuid.uuid4(), name), _key(uuid.uuid4(), name)
    await cache.get_or_set(first, Loader("first"), type_=str, ttl_s=60)
    await cache.get_or_set(second, Loader("second"), type_=str, ttl_s=60)
    assert await cache.get_or_set(first, Loader("wrong"), type_=str, ttl_s=60) == "first"
    assert await cache.get_or_set(second, Loader("wrong"), type_=str, ttl_s=60) == "second"


async def test_fifty_concurrent_misses_load_once(cache: RedisCache) -> None:
    key, gate = _key(), asyncio.Event()
    loader = Loader("value", gate)
    reads = [
        asyncio.create_task(cache.get_or_set(key, loader, type_=str, ttl_s=60)) for _ in range(50)
    ]
    await loader.started.wait()
    await asyncio.sleep(0.05)
    gate.set()
    assert await asyncio.gather(*reads) == ["value"] * 50
    assert loader.calls == 1


@pytest.mark.parametrize("stored", ["nothing", "a stale value"])
async def test_another_process_waits_for_the_fill(
    cache: RedisCache, second_process: RedisCache, redis: Redis, stored: str
) -> None:
    """Also when a value stored under an older generation is there: the read
    script takes no lock for it, the fill still locks on its own."""
    key, gate = _key(), asyncio.Event()
    if stored == "a stale value":
        assert await cache.get_or_set(key, Loader("old"), type_=str, ttl_s=60) == "old"
        await cache.invalidate(key.workspace_id, key.namespace)
    first, second = Loader("value", gate), Loader("value")
    second_process.LOCK_WAIT_S = 10  # generous on a loaded machine; the fill takes ~50 ms
    filling = asyncio.create_task(cache.get_or_set(key, first, type_=str, ttl_s=60))
    await first.started.wait()
    assert await redis.exists(cache._keys(key).lock), "the fill holds the lock"
    waiting = asyncio.create_task(second_process.get_or_set(key, second, type_=str, ttl_s=60))
    await asyncio.sleep(0.05)
    gate.set()
    assert await asyncio.gather(filling, waiting) == ["value", "value"]
    assert (first.calls, second.calls) == (1, 0)


async def test_the_other_process_gives_up_waiting_and_loads(
    cache: RedisCache, second_process: RedisCache
) -> None:
    key, gate = _key(), asyncio.Event()
    stuck, second = Loader("late", gate), Loader("value")
    filling = asyncio.create_task(cache.get_or_set(key, stuck, type_=str, ttl_s=60))
    await stuck.started.wait()
    result = await second_process.get_or_set(key, second, type_=str, ttl_s=60)
    assert (result, second.calls) == ("value", 1)
    gate.set()
    await filling


async def test_a_slow_loader_cannot_store_a_value_older_than_an_invalidation(
    cache: RedisCache,
) -> None:
    """The loader reads v1, a write commits v2 and invalidates, then the loader
    finishes: v1 must not be served afterwards."""
    key, gate = _key(), asyncio.Event()
    slow = Loader("v1", gate)
    reading = asyncio.create_task(cache.get_or_set(key, slow, type_=str, ttl_s=60))
    await slow.started.wait()
    await cache.invalidate(key.workspace_id, key.namespace)
    gate.set()
    assert await reading == "v1"  # that reader began before the write: v1 is fine for it
    fresh = Loader("v2")
    assert await cache.get_or_set(key, fresh, type_=str, ttl_s=60) == "v2"
    assert fresh.calls == 1


async def test_a_reader_after_an_invalidation_does_not_join_an_older_fill(
    cache: RedisCache,
) -> None:
    key, gate = _key(), asyncio.Event()
    old = Loader("before the write", gate)
    filling = asyncio.create_task(cache.get_or_set(key, old, type_=str, ttl_s=60))
    await old.started.wait()
    await cache.invalidate(key.workspace_id, key.namespace)
    fresh = Loader("after the write")
    assert await cache.get_or_set(key, fresh, type_=str, ttl_s=60) == "after the write"
    gate.set()
    assert await filling == "before the write"
    assert await cache.get_or_set(key, Loader("x"), type_=str, ttl_s=60) == "after the write"


async def test_a_lost_generation_key_never_brings_old_values_back(
    cache: RedisCache, redis: Redis
) -> None:
    """Eviction or a failover may drop a generation key: what was cached under it
    must stay unreachable, whatever the later invalidations."""
    key = _key()
    for _ in range(2):
        await cache.invalidate(key.workspace_id, key.namespace)
    await cache.get_or_set(key, Loader("old secret"), type_=str, ttl_s=60)
    generation = f"keel:{{ws:{key.workspace_id}}}:gen:{key.namespace}"
    await redis.delete(generation)
    for _ in range(2):  # as many writes as before: a counter would be back where it was
        await cache.invalidate(key.workspace_id, key.namespace)
    assert await cache.peek((key, str)) == [None]
    assert await cache.get_or_set(key, Loader("new"), type_=str, ttl_s=60) == "new"
    await redis.delete(generation)
    assert await cache.get_or_set(key, Loader("newer"), type_=str, ttl_s=60) == "newer"


async def test_missing_values_are_cached_only_when_asked(cache: RedisCache) -> None:
    key, nothing = _key(), Loader(None)
    for _ in range(2):
        assert await cache.get_or_set(key, nothing, type_=str, ttl_s=60) is None
    assert nothing.calls == 2
    other = _key()
    for _ in range(2):
        assert await cache.get_or_set(other, nothing, type_=str, ttl_s=60, negative_ttl_s=5) is None
    assert nothing.calls == 3


async def test_ttl_has_jitter_and_keys_carry_the_tenant(cache: RedisCache, redis: Redis) -> None:
    workspace = uuid.uuid4()
    ttls = []
    for i in range(20):
        await cache.get_or_set(_key(workspace, f"k{i}"), Loader(i), type_=int, ttl_s=100)
    keys = [key async for key in redis.scan_iter(match=f"keel:{{ws:{workspace}}}:v:*")]
    assert len(keys) == 20
    ttls = [await redis.pttl(key) for key in keys]
    assert all(89_000 <= ttl <= 110_000 for ttl in ttls), ttls
    assert len(set(ttls)) > 1


@standalone_redis  # CLIENT PAUSE of the one server
async def test_a_stalled_redis_falls_through_to_the_loader(cache: RedisCache, redis: Redis) -> None:
    key, loader = _key(), Loader("from postgres")
    errors_before = (
        REGISTRY.get_sample_value(
            "keel_cache_requests_total", {"namespace": "test", "result": "error"}
        )
        or 0
    )
    await redis.execute_command("CLIENT", "PAUSE", "1000", "ALL")
    try:
        assert await cache.get_or_set(key, loader, type_=str, ttl_s=60) == "from postgres"
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
    errors_after = REGISTRY.get_sample_value(
        "keel_cache_requests_total", {"namespace": "test", "result": "error"}
    )
    assert errors_after == errors_before + 1


def test_a_key_cannot_be_built_without_a_workspace() -> None:
    with pytest.raises(TypeError):
        CacheKey("not-a-uuid", "test", "doc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must match"):
        CacheKey(uuid.uuid4(), "test", "a}b:{c")


@standalone_redis  # CLIENT PAUSE of the one server
async def test_after_a_failed_read_reads_skip_redis_for_a_moment(
    services: Services, redis: Redis
) -> None:
    client = create_redis(
        services.redis_url, cluster=services.redis_cluster, timeout_s=0.05, retries=0
    )
    counting = CountingCalls(client, "execute_command")
    cache = RedisCache(counting)  # type: ignore[arg-type]
    cache.outages.read_pause_s = 2.0
    await redis.execute_command("CLIENT", "PAUSE", "200", "ALL")
    try:
        assert await cache.get_or_set(_key(), Loader("a"), type_=str, ttl_s=60) == "a"
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
    sent = counting.calls["execute_command"]
    key = _key()
    assert await cache.get_or_set(key, Loader("b"), type_=str, ttl_s=60) == "b"
    assert counting.calls["execute_command"] == sent, "a read right after a failed one skips Redis"
    await asyncio.sleep(cache.outages.read_pause_s)
    assert await cache.get_or_set(key, Loader("c"), type_=str, ttl_s=60) == "c"
    assert counting.calls["execute_command"] > sent, "then reads use Redis again"
    assert await cache.get_or_set(key, Loader("d"), type_=str, ttl_s=60) == "c", "and fill it"
    await client.aclose()


async def test_a_fill_releases_its_lock_and_never_another_fillers(
    cache: RedisCache, redis: Redis
) -> None:
    key = _key()
    lock = f"keel:{{ws:{key.workspace_id}}}:lock:{key.namespace}:{key.name}"
    assert await cache.get_or_set(key, Loader("v"), type_=str, ttl_s=60) == "v"
    assert not await redis.exists(lock), "the store released the lock"

    other = _key()
    other_lock = f"keel:{{ws:{other.workspace_id}}}:lock:{other.namespace}:{other.name}"

    async def slow_load() -> str:
        # Our lock lapses while loading, and another process takes it.
        await redis.set(other_lock, "theirs", px=5000)
        return "w"

    assert await cache.get_or_set(other, slow_load, type_=str, ttl_s=60) == "w"
    assert await redis.get(other_lock) == b"theirs"
    assert await cache.get_or_set(other, Loader("x"), type_=str, ttl_s=60) == "w"

    missing = _key()
    missing_lock = f"keel:{{ws:{missing.workspace_id}}}:lock:{missing.namespace}:{missing.name}"
    assert await cache.get_or_set(missing, Loader(None), type_=str, ttl_s=60) is None
    assert not await redis.exists(missing_lock), "released without a store too"


async def test_a_miss_reads_and_locks_in_one_round_trip(services: Services, redis: Redis) -> None:
    client = create_redis(services.redis_url, cluster=services.redis_cluster)
    counting = CountingCalls(client, "execute_command", "pipeline")
    cache = RedisCache(counting)  # type: ignore[arg-type]
    key = _key()
    lock = f"keel:{{ws:{key.workspace_id}}}:lock:{key.namespace}:{key.name}"
    held: list[bool] = []

    async def load() -> str:
        held.append(bool(await redis.exists(lock)))
        return "v"

    assert await cache.get_or_set(key, load, type_=str, ttl_s=60) == "v"
    assert held == [True], "the loader ran under the fill lock"
    assert counting.calls == {"execute_command": 2, "pipeline": 0}, "read-and-lock, then store"
    assert await cache.get_or_set(key, Loader("other"), type_=str, ttl_s=60) == "v"
    assert counting.calls["execute_command"] == 3, "a hit is one round trip"
    await client.aclose()


@standalone_redis  # an ACL user of the one server
async def test_a_refused_read_script_reads_alone_and_pauses_nothing(
    cache: RedisCache, services: Services, redis: Redis
) -> None:
    """Redis refusing the read script (out of memory, or here an ACL without
    scripts) is an answering Redis: the read goes alone, a miss still locks,
    and reads do not pause."""
    user, password = f"noscript-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", "~keel:*", "+@all", "-@scripting"
    )
    limited = create_redis(
        services.redis_url, cluster=services.redis_cluster, timeout_s=0.5, retries=0
    )
    limited.connection_pool.connection_kwargs.update(username=user, password=password)
    refused = RedisCache(limited)
    hot, cold = _key(), _key()
    try:
        assert await cache.get_or_set(hot, Loader("stored"), type_=str, ttl_s=60) == "stored"
        loader = Loader("loaded")
        assert await refused.get_or_set(hot, loader, type_=str, ttl_s=60) == "stored"
        assert loader.calls == 0, "a hit read without the script"
        held: list[bool] = []

        async def load() -> str:
            held.append(bool(await redis.exists(refused._keys(cold).lock)))
            return "cold"

        assert await refused.get_or_set(cold, load, type_=str, ttl_s=60) == "cold"
        assert held == [True], "the miss took the fill lock on its own"
        assert refused.outages.paused_until == 0.0
    finally:
        await limited.aclose()
        await redis.execute_command("ACL", "DELUSER", user)
