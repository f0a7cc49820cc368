"""Keeping the hub's pub/sub connection honest (hub.py).

A server gone silent (its host lost) closes nothing, and redis-py's own
health check never waits for its answer: a quiet connection is pinged, and
one that answered nothing for SILENT_S is taken for lost. On a cluster the
listener runs no commands, so nothing else would see a replica promoted after
a master died: the hub reads each slot's master again before it re-subscribes.
"""

from __future__ import annotations

import contextlib
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from adapters.redis.client import RedisClient

SILENT_S = 15.0
PING = "keel-listener"


async def still_heard(pubsub: Any, heard: float, now: float) -> float:
    """Ping a quiet connection (its pong is a message); RedisConnectionError once
    nothing was heard on it for SILENT_S."""
    if now - heard >= SILENT_S:
        raise RedisConnectionError(f"nothing heard for {now - heard:.0f} s")
    await pubsub.ping(PING)
    return heard


async def refresh_topology(listener: RedisClient) -> None:
    if isinstance(listener, RedisCluster):
        with contextlib.suppress(RedisError, OSError):
            await listener.nodes_manager.initialize()
