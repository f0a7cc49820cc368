"""Redis clients: short timeouts, so that a dead or slow Redis fails fast.

Each client has a bounded pool that makes a burst wait for a free connection
(up to the timeout) instead of opening one connection per concurrent request:
redis-py's default pool fails with "Too many connections" past 100, and a
thousand open event streams must not mean a thousand Redis connections.

A full Redis (`maxmemory` reached; Keel's runs `noeviction`, which BullMQ
needs) still answers reads and deletes but refuses writes with an OOM error.
That is not "unreachable": `unavailable_as` turns it into StorageFullError
(503 with Retry-After), and `note_full` counts it (`keel_redis_full_total`,
by what was refused) and logs one line per FULL_LOG_EVERY_S and kind.

With `cluster` (KEEL_REDIS_CLUSTER), the URL is one seed node of a Redis
Cluster and the client is redis-py's RedisCluster: it discovers the other
nodes, routes each command to its slot's master and follows a failover.
Its pools are per node and do not wait: past CLUSTER_MAX_CONNECTIONS busy
connections to one node, a command fails at once (MaxConnectionsError).
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from prometheus_client import Counter
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError

from domain.errors import StorageFullError, UnavailableError

MAX_CONNECTIONS = 50
CLUSTER_MAX_CONNECTIONS = 200  # per node
RedisClient = Redis | RedisCluster
FULL_RETRY_AFTER_S = 5
FULL_LOG_EVERY_S = 10.0
FULL = Counter("keel_redis_full", "Redis writes refused because Redis is out of memory", ["what"])
logger = structlog.get_logger("keel.redis")

# Redis refuses a script's memory-using commands when it is out of memory, but
# only until the script's first write (it cannot stop a script half-way): a
# script that first prunes (a write that uses no memory) could then store past
# `maxmemory`. Such scripts start with this: a memory-using command that
# changes nothing (ZADD XX of the empty member, which none of Keel's sorted
# sets holds, on the script's first key, a sorted set or none).
OOM_GATE = "redis.call('ZADD', KEYS[1], 'XX', 0, '')\n"
_logged: dict[str, float] = {}  # what -> when its last "full" line was written
_refused: dict[str, int] = {}  # what -> refusals since that line


def create_redis(
    url: str,
    *,
    cluster: bool = False,
    timeout_s: float = 0.5,
    retries: int = 2,
    wait_s: float = 5.0,
) -> RedisClient:
    """`timeout_s` bounds each command; `wait_s` how long a burst waits for a free
    connection (not on a cluster, whose pools do not wait)."""
    retry = (
        Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries)
        if retries
        else Retry(NoBackoff(), 0)
    )
    if cluster:
        return RedisCluster.from_url(
            url,
            max_connections=CLUSTER_MAX_CONNECTIONS,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
            retry=retry,
        )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=wait_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        retry=retry,
    )
    return Redis(connection_pool=pool, retry=retry)


def create_listener(url: str, *, cluster: bool = False) -> RedisClient:
    """A client for a pub/sub connection: no read timeout (it waits for messages),
    no silent reconnect (the owner must know, to catch up), pinged when idle.
    On a cluster its pub/sub is sharded (adapters/redis/events/hub.py)."""
    if cluster:
        return RedisCluster.from_url(
            url,
            socket_timeout=None,
            socket_connect_timeout=1.0,
            health_check_interval=5,
            retry=Retry(NoBackoff(), 0),
        )
    return Redis.from_url(
        url, socket_connect_timeout=1.0, health_check_interval=5, retry=Retry(NoBackoff(), 0)
    )


async def close_client(client: RedisClient) -> None:
    """Close `client` and its connections: a plain client handed a pool
    (create_redis) leaves the pool open on aclose(); a cluster client closes
    its nodes' connections itself."""
    await client.aclose()
    if isinstance(client, Redis):
        await client.connection_pool.disconnect()


def is_full(error: BaseException) -> bool:
    """Redis refused a write for lack of memory (a script's refusal arrives as
    a plain ResponseError carrying the OOM message)."""
    return isinstance(error, OutOfMemoryError) or (
        isinstance(error, ResponseError) and "OOM command not allowed" in str(error)
    )


def note_full(what: str) -> None:
    """Count a write refused because Redis is full; log it, once in a while."""
    FULL.labels(what).inc()
    _refused[what] = _refused.get(what, 0) + 1
    now = time.monotonic()
    if now - _logged.get(what, -FULL_LOG_EVERY_S) >= FULL_LOG_EVERY_S:
        _logged[what] = now
        logger.error(
            "redis is full",
            what=what,
            refused=_refused.pop(what),
            hint="Redis reached maxmemory and refuses writes; free memory or raise maxmemory",
        )


@contextmanager
def unavailable_as(what: str) -> Iterator[None]:
    """Re-raise a Redis failure inside the block as UnavailableError (503) naming
    `what`: StorageFullError when Redis refused a write for lack of memory."""
    try:
        yield
    except (RedisError, OSError) as error:
        if is_full(error):
            note_full(what)
            raise StorageFullError(
                f"{what} cannot be written: Redis is full", FULL_RETRY_AFTER_S
            ) from error
        raise UnavailableError(f"{what} is unavailable: Redis cannot be reached") from error
