"""Redis clients: short timeouts, so that a dead or slow Redis fails fast.

Each client has a bounded pool that makes a burst wait for a free connection
(up to the timeout) instead of opening one connection per concurrent request:
redis-py's default pool fails with "Too many connections" past 100, and a
thousand open event streams must not mean a thousand Redis connections.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import RedisError

from domain.errors import UnavailableError

MAX_CONNECTIONS = 50


def create_redis(
    url: str, *, timeout_s: float = 0.5, retries: int = 2, wait_s: float = 5.0
) -> Redis:
    """`timeout_s` bounds each command; `wait_s` how long a burst waits for a free connection."""
    retry = (
        Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries)
        if retries
        else Retry(NoBackoff(), 0)
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


def create_listener(url: str) -> Redis:
    """A client for a pub/sub connection: no read timeout (it waits for messages),
    no silent reconnect (the owner must know, to catch up), pinged when idle."""
    return Redis.from_url(
        url, socket_connect_timeout=1.0, health_check_interval=5, retry=Retry(NoBackoff(), 0)
    )


@contextmanager
def unavailable_as(what: str) -> Iterator[None]:
    """Re-raise a Redis failure inside the block as UnavailableError (503) naming `what`."""
    try:
        yield
    except (RedisError, OSError) as error:
        raise UnavailableError(f"{what} is unavailable: Redis cannot be reached") from error
