"""`keel doctor`'s Redis checks, read-only: reachable, version 6.2 or later
(the queue's scripts need it), `maxmemory-policy noeviction` (BullMQ's
jobs must never be evicted), and whether it keeps anything on disk."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from adapters.redis.client import create_redis
from entrypoints.doctor.report import Check, fail, ok, warn

MINIMUM = (6, 2)


def redis_version_check(version: str) -> Check:
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts >= MINIMUM:
        return ok("redis.version", f"Redis {version}.")
    return fail(
        "redis.version",
        f"Redis {version} is older than 6.2, which the queue's scripts need; upgrade Redis.",
    )


def policy_check(policy: str) -> Check:
    if policy == "noeviction":
        return ok("redis.maxmemory-policy", "noeviction: no job or ticket is ever evicted.")
    return fail(
        "redis.maxmemory-policy",
        f"{policy} lets Redis evict queued jobs and stream tickets when memory is full;"
        " set `maxmemory-policy noeviction`.",
    )


async def redis_checks(url: str) -> list[Check]:
    client = create_redis(url, timeout_s=2.0, retries=0)
    try:
        return await _checks(client)
    except RedisError as error:
        return [fail("redis.reachable", f"cannot reach KEEL_REDIS_URL ({error}); check the URL.")]
    finally:
        await client.aclose()


async def _checks(client: Redis) -> list[Check]:
    await client.ping()
    server = await client.info("server")
    checks = [
        ok("redis.reachable", "PING answered."),
        redis_version_check(str(server["redis_version"])),
    ]
    try:
        policy = (await client.config_get("maxmemory-policy")).get("maxmemory-policy")
    except ResponseError as error:
        checks.append(
            warn(
                "redis.maxmemory-policy",
                f"cannot read it ({error}); make sure the provider sets noeviction.",
            )
        )
    else:
        checks.append(policy_check(str(policy)))
        kept = await client.config_get("appendonly")
        saves = await client.config_get("save")
        checks.append(persistence_check(kept.get("appendonly") == "yes", bool(saves.get("save"))))
    return checks


def persistence_check(append_only: bool, snapshots: bool) -> Check:
    if append_only:
        return ok("redis.persistence", "appendonly: queued jobs survive a restart of Redis.")
    return warn(
        "redis.persistence",
        ("only periodic snapshots" if snapshots else "nothing")
        + " on disk: a restart of Redis loses jobs, stream tickets and UI state; the outbox"
        " and the reconciler still run every committed task (late), but set"
        " `appendonly yes` to keep the rest.",
    )
