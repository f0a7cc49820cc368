"""`keel doctor`'s Redis checks, read-only: reachable, version 6.2 or later
(the queue's scripts need it), its round-trip time, which user Keel is
(a warning for the default user, which may touch every key), `maxmemory-policy
noeviction` (BullMQ's jobs must never be evicted), whether it keeps
anything on disk, and that KEEL_REDIS_CLUSTER says what Redis is: with it, a
cluster whose slots are all served, with a replica per master."""

from __future__ import annotations

import statistics
import time

from redis.exceptions import NoPermissionError, RedisClusterException, RedisError, ResponseError

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


async def redis_checks(url: str, cluster: bool) -> list[Check]:
    try:
        client = create_redis(url, cluster=cluster, timeout_s=2.0, retries=0)
    except RedisClusterException as error:  # a Unix socket, say: no cluster there
        return [fail("redis.reachable", f"KEEL_REDIS_URL is no cluster node ({error}).")]
    try:
        return await _checks(client, cluster)
    except (RedisError, RedisClusterException) as error:
        return [fail("redis.reachable", f"cannot reach KEEL_REDIS_URL ({error}); check the URL.")]
    finally:
        await client.aclose()


async def _checks(client: RedisClient, cluster: bool) -> list[Check]:
    await client.ping()
    server = await client.info("server")
    checks = [
        ok("redis.reachable", "PING answered."),
        mode_check(cluster, str(server.get("redis_mode", "standalone")), await _cluster(client)),
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


async def _cluster(client: RedisClient) -> dict[str, str]:
    """CLUSTER INFO, or nothing from a Redis that is not a cluster node."""
    try:
        answer = await client.execute_command("CLUSTER", "INFO")
    except ResponseError:
        return {}
    if isinstance(answer, bytes | str):  # one node's text, as a plain client reads it
        text = answer.decode() if isinstance(answer, bytes) else answer
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: str(value) for key, value in answer.items()}


def mode_check(cluster: bool, mode: str, info: dict[str, str]) -> Check:
    if not cluster:
        if mode == "cluster":
            return fail(
                "redis.mode",
                "this Redis is a cluster node: set KEEL_REDIS_CLUSTER=true, or every key"
                " of another node's slots is refused (MOVED).",
            )
        return ok("redis.mode", "one Redis server (KEEL_REDIS_CLUSTER is off).")
    if info.get("cluster_state") != "ok":
        state = info.get("cluster_state", "unknown")
        return fail("redis.mode", f"the cluster's state is {state}: some slots are not served.")
    masters, nodes = int(info.get("cluster_size", 0)), int(info.get("cluster_known_nodes", 0))
    shape = f"a cluster of {masters} masters and {nodes - masters} replicas"
    if nodes < 2 * masters:
        return warn(
            "redis.mode",
            f"{shape}: a master without a replica loses its slots' keys (queued jobs"
            " among them) when it dies; give every master a replica.",
        )
    return ok("redis.mode", f"{shape}, every slot served.")


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
