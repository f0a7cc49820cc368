"""Redis clients: short timeouts, so that a dead or slow Redis fails fast."""

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff


def create_redis(url: str, *, timeout_s: float = 0.5, retries: int = 2) -> Redis:
    retry = (
        Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries)
        if retries
        else Retry(NoBackoff(), 0)
    )
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        retry=retry,
    )


def create_listener(url: str) -> Redis:
    """A client for a pub/sub connection: no read timeout (it waits for messages),
    no silent reconnect (the owner must know, to catch up), pinged when idle."""
    return Redis.from_url(
        url, socket_connect_timeout=1.0, health_check_interval=5, retry=Retry(NoBackoff(), 0)
    )
