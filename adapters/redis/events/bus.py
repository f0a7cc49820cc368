"""RedisEventBus (domain.ports.EventBus): the publisher and this process's hub."""

from __future__ import annotations

import contextlib

from adapters.redis.client import RedisClient
from adapters.redis.events.hub import EventHub
from adapters.redis.events.publisher import RedisEventPublisher
from adapters.redis.events.subscription import RedisEventSubscription
from domain.events import StoredEvent, StreamRef, TaskEvent


class RedisEventBus:
    def __init__(
        self,
        redis: RedisClient,
        listener: RedisClient,
        *,
        task_maxlen: int = 10_000,
        workspace_maxlen: int = 10_000,
        retention_s: int = 24 * 3600,
        buffer: int = 1_000,
    ) -> None:
        """`redis` runs commands; `listener` is a client for the pub/sub connection
        only (no read timeout: it waits for wake-ups)."""
        self._publisher = RedisEventPublisher(redis, (workspace_maxlen, task_maxlen, retention_s))
        self._hub = EventHub(redis, listener, buffer)

    async def publish(self, *events: TaskEvent) -> None:
        await self._publisher.publish(*events)

    def subscribe(
        self, stream: StreamRef, after: str | None
    ) -> contextlib.AbstractAsyncContextManager[RedisEventSubscription]:
        return self._hub.subscribe(stream, after)

    async def newest(self, stream: StreamRef) -> StoredEvent | None:
        return await self._hub.newest(stream)

    async def close(self) -> None:
        """Close every subscription (subscribers see SubscriptionClosedError) and stop."""
        await self._hub.close()

    def drain(self) -> None:
        """Close every open subscription now and refuse new ones (graceful shutdown)."""
        self._hub.drain()
