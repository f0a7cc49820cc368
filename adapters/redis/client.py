"""The shared asyncio Redis client: short timeouts, so a dead Redis fails fast."""

from redis.asyncio import Redis


def create_redis(url: str, *, timeout_s: float = 0.5) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )
