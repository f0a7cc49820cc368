"""`keel doctor`'s Redis checks, read-only: reachable, version 6.2 or later
(the queue's scripts need it), its round-trip time, which user Keel is
(a warning for the default user, which may touch every key), `maxmemory-policy
noeviction` (BullMQ's jobs must never be evicted), and whether it keeps
anything on disk."""

from __future__ import annotations

import statistics
import time

from redis.exceptions import NoPermissionError, RedisError, ResponseError

from adapters.redis.client import RedisClient, create_redis
from entrypoints.doctor.report import Check, fail, ok, warn

MINIMUM = (6, 2)
SLOW_MS = 5.0  # a cached read is a round trip or two; a local Redis answers in well under 1 ms


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


async def _checks(client: RedisClient) -> list[Check]:
    await client.ping()
    server = await client.info("server")
    checks = [
        ok("redis.reachable", "PING answered."),
        redis_version_check(str(server["redis_version"])),
        latency_check(await _round_trip_ms(client)),
        await _user_check(client),
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


async def _user_check(client: RedisClient) -> Check:
    try:
        user = await client.execute_command("ACL", "WHOAMI")
    except NoPermissionError:
        return ok("redis.user", "connected as an ACL user that may not run ACL commands.")
    except ResponseError as error:
        return warn("redis.user", f"cannot tell which user this is ({error}).")
    name = user.decode() if isinstance(user, bytes) else str(user)
    if name != "default":
        return ok("redis.user", f"connected as the ACL user {name}.")
    return warn(
        "redis.user",
        "connected as Redis's default user, which may read and change every key on this"
        " Redis (another application's too); give Keel a user limited to its own keys"
        " (docs/deploying.md: A Redis user for Keel).",
    )


async def _round_trip_ms(client: RedisClient, pings: int = 20) -> float:
    """The median of `pings` PING round trips, in milliseconds."""
    times = []
    for _ in range(pings):
        started = time.perf_counter()
        await client.ping()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def latency_check(median_ms: float) -> Check:
    shown = f"{median_ms:.2f} ms"
    if median_ms <= SLOW_MS:
        return ok("redis.latency", f"a round trip takes {shown} (median of 20 PINGs).")
    return warn(
        "redis.latency",
        f"a round trip takes {shown} (median of 20 PINGs), over {SLOW_MS:.0f} ms: every cached"
        " read and stream event waits for it; run Redis nearer the API.",
    )


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
