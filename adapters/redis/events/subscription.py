"""One listener of a stream: the backlog after its position, then live events.

It joins its stream's group in the hub first (from then on it receives live
events), then replays the backlog after its `after` position, then the live
events, skipping any id it already returned. It buffers a bounded number of
live events: one that falls behind is closed and resumes from its last id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from prometheus_client import Counter

from adapters.redis.client import RedisClient
from adapters.redis.events.wire import PAGE, oldest_id, read_after
from domain.errors import SubscriptionClosedError
from domain.events import START, EventType, StoredEvent, StreamRef, TaskEvent, position

CLOSED = Counter("keel_event_subscriptions_closed", "Subscriptions closed early", ["reason"])


class RedisEventSubscription:
    def __init__(self, redis: RedisClient, key: str, stream: StreamRef, buffer: int) -> None:
        self._redis, self._key, self._stream, self._buffer = redis, key, stream, buffer
        self._live: deque[StoredEvent] = deque()
        self._backlog: deque[StoredEvent] = deque()
        self._backlog_from: str | None = None  # exclusive; None once replayed
        self._last: tuple[int, int] = (0, 0)
        self._wake = asyncio.Event()
        self._closed: str | None = None
        self._reset: StoredEvent | None = None

    def push(self, event: StoredEvent) -> None:
        if self._closed:
            return
        if len(self._live) >= self._buffer:
            self.close("fell behind")
            return
        self._live.append(event)
        self._wake.set()

    def close(self, reason: str) -> None:
        if not self._closed:
            self._closed = reason
            CLOSED.labels(reason).inc()
            self._wake.set()

    async def start(self, after: str | None) -> None:
        """Position the replay; a stream.reset first when `after` is no longer retained."""
        if after is None:
            # A task's stream from its start; a workspace's from now on.
            self._backlog_from = START if self._stream.task_id is not None else None
            return
        self._backlog_from, self._last = after, position(after)
        if self._last == position(START):
            return
        oldest = await oldest_id(self._redis, self._key)
        if oldest is not None and position(oldest) <= self._last:
            return
        # Events after `after` are gone: start again from the oldest one kept.
        # The reset sits at START, so a client that drops right after it
        # resumes from START and gets everything still kept.
        self._backlog_from, self._last = START, position(START)
        data = {"last_event_id": after, "oldest_id": oldest}
        event = TaskEvent(self._stream.workspace_id, self._stream.task_id, EventType.RESET, data)
        self._reset = StoredEvent(START, event)

    async def next(self, timeout_s: float) -> StoredEvent | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if self._reset is not None:
            reset, self._reset = self._reset, None
            return reset
        while True:
            if self._closed:
                raise SubscriptionClosedError(self._closed)
            if not self._backlog and self._backlog_from is not None:
                page = await read_after(self._redis, self._key, self._backlog_from)
                self._backlog.extend(page)
                self._backlog_from = page[-1].id if len(page) == PAGE else None
            if (event := self._pop()) is not None:
                return event
            self._wake.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    async def batch(self, timeout_s: float) -> list[StoredEvent]:
        first = await self.next(timeout_s)
        if first is None:
            return []
        events = [first]
        # Only what is here already: a backlog page not yet read comes first.
        while self._backlog or self._backlog_from is None:
            if (event := self._pop()) is None:
                break
            events.append(event)
        return events

    def _pop(self) -> StoredEvent | None:
        """The next event held here (the backlog first), skipping ids already returned."""
        for source in (self._backlog, self._live):
            while source:
                event = source.popleft()
                at = position(event.id)
                if at > self._last:
                    self._last = at
                    return event
        return None
