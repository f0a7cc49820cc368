"""The per-process hub of the event bus's subscriptions.

One pub/sub connection per process, subscribed to the wake channels of the
workspaces that have listeners here, feeds one reader that reads each stream
once (XRANGE from where it stopped) and hands the events to every local
listener of that stream (subscription.py). A lost pub/sub connection (Redis
restarted, `CLIENT KILL`) is re-opened with backoff and every stream is read
again from where the reader stopped, so a wake-up lost meanwhile loses
nothing; a sweep every few seconds covers a wake-up lost any other way.

On Redis Cluster the wake-ups are sharded pub/sub (SSUBSCRIBE; the publish
script SPUBLISHes): a wake channel lives on its workspace's shard, redis-py's
ClusterPubSub holds one connection per shard and moves a channel to the new
master after a failover, and a dead shard stops only its own wake-ups (the
sweep reads those streams meanwhile), not every stream of the process; when
it loses them all, it reads the slot map again before it re-subscribes. It
reads one shard at a time, so the hub polls in short slices (SHARD_POLL_S):
a wake-up waits at most about that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from prometheus_client import Counter, Gauge
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from adapters.redis.client import RedisClient
from adapters.redis.events.liveness import refresh_topology, still_heard
from adapters.redis.events.subscription import RedisEventSubscription
from adapters.redis.events.wire import (
    PAGE,
    WHAT,
    command,
    decoded,
    newest,
    stream_key,
    wake_channel,
    woken_keys,
)
from domain.errors import SubscriptionClosedError, UnavailableError
from domain.events import StoredEvent, StreamRef

logger = logging.getLogger("keel.events")

LISTENERS = Gauge("keel_event_listeners", "Event subscriptions open in this process")
RECONNECTS = Counter("keel_event_bus_reconnects", "Times the pub/sub connection was re-opened")

HUB_CHANNEL = "keel:{events}:hub"  # always subscribed, so the connection is never idle-empty
SWEEP_S = 5.0
# redis-py's sharded pub/sub reads one shard's connection at a time: a message
# (or a subscription's confirmation) on another waits out the slice.
SHARD_POLL_S = 0.05


class _Group:
    """The local listeners of one stream, and where the reader stopped in it."""

    def __init__(self, key: str, workspace_id: UUID) -> None:
        self.key, self.workspace_id = key, workspace_id
        self.cursor: str | None = None  # None until the group is ready
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.listeners: set[RedisEventSubscription] = set()


class EventHub:
    def __init__(self, redis: RedisClient, listener: RedisClient, buffer: int) -> None:
        """`redis` runs commands; `listener` is a client for the pub/sub connection
        only (no read timeout: it waits for wake-ups); `buffer`: the live events
        a subscription holds before it is closed as fallen behind."""
        self._redis, self._listener, self._buffer = redis, listener, buffer
        self._groups: dict[str, _Group] = {}
        self._channels: dict[str, int] = {HUB_CHANNEL: 1}  # channel -> groups using it
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._pubsub: Any = None
        self._dirty: set[str] = set()
        self._has_dirty = asyncio.Event()
        self._runners: list[asyncio.Task[None]] = []
        self._closing = False
        self._stopped = False
        self._background: set[asyncio.Task[None]] = set()
        self._sharded = isinstance(listener, RedisCluster)
        self._kinds = ("smessage", "ssubscribe") if self._sharded else ("message", "subscribe")

    @contextlib.asynccontextmanager
    async def subscribe(
        self, stream: StreamRef, after: str | None
    ) -> AsyncIterator[RedisEventSubscription]:
        if self._closing:
            raise SubscriptionClosedError("shutting down")
        self._start()
        key = stream_key(stream)
        subscription = RedisEventSubscription(self._redis, key, stream, self._buffer)
        group = await self._join(key, stream.workspace_id, subscription)
        LISTENERS.inc()
        try:
            await subscription.start(after)
            yield subscription
        finally:
            LISTENERS.dec()
            subscription.close("ended")
            await self._leave(group, subscription)

    async def newest(self, stream: StreamRef) -> StoredEvent | None:
        return await newest(self._redis, stream_key(stream))

    async def close(self) -> None:
        """Close every subscription (subscribers see SubscriptionClosedError) and stop."""
        self.drain()
        # redis-py's read timeout can turn a cancellation into a TimeoutError,
        # which the listener takes for a lost connection: it checks this flag too.
        self._stopped = True
        self._has_dirty.set()
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        for runner in self._runners:
            runner.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        self._runners.clear()

    def drain(self) -> None:
        """Close every open subscription now and refuse new ones (graceful shutdown)."""
        self._closing = True
        for group in self._groups.values():
            for listener in list(group.listeners):
                listener.close("shutting down")

    def _start(self) -> None:
        if not self._runners:
            self._runners = [
                asyncio.create_task(self._listen(), name="keel-events-listen"),
                asyncio.create_task(self._read(), name="keel-events-read"),
            ]

    async def _join(self, key: str, workspace_id: UUID, listener: RedisEventSubscription) -> _Group:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key, workspace_id)
            try:
                await self._want(wake_channel(workspace_id))
                last = await command(self._redis.xrevrange(key, "+", "-", count=1))
                group.cursor = last[0][0].decode() if last else "0-0"
            except BaseException as error:
                del self._groups[key]
                self._unwant(wake_channel(workspace_id))
                # Others waiting on this group were not cancelled themselves.
                cancelled = isinstance(error, asyncio.CancelledError)
                group.ready.set_exception(
                    SubscriptionClosedError("the first subscriber left") if cancelled else error
                )
                group.ready.exception()  # retrieved: the joiners waiting re-raise it
                raise
            group.ready.set_result(None)
            self._mark(key)  # anything appended while the wake-up was being set up
        else:
            await asyncio.shield(group.ready)
        group.listeners.add(listener)
        if self._closing:  # drained while this one was joining
            listener.close("shutting down")
        return group

    async def _leave(self, group: _Group, listener: RedisEventSubscription) -> None:
        group.listeners.discard(listener)
        if not group.listeners and self._groups.get(group.key) is group:
            del self._groups[group.key]
            self._unwant(wake_channel(group.workspace_id))

    async def _want(self, channel: str) -> None:
        """Subscribe to `channel` (once per process) and wait until Redis confirms it."""
        self._channels[channel] = self._channels.get(channel, 0) + 1
        confirmed = self._confirmed.get(channel)
        if confirmed is None:
            confirmed = self._confirmed[channel] = asyncio.get_running_loop().create_future()
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._subscribe(self._pubsub, channel)  # a lost one resubscribes
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), 2.0)
        except TimeoutError:
            # The caller (_join) gives the channel back.
            raise UnavailableError(f"{WHAT} is unavailable: Redis did not confirm") from None

    def _unwant(self, channel: str) -> None:
        left = self._channels.get(channel, 0) - 1
        if left > 0:
            self._channels[channel] = left
            return
        self._channels.pop(channel, None)
        self._confirmed.pop(channel, None)
        if self._pubsub is not None:
            task = asyncio.get_running_loop().create_task(self._unsubscribe(self._pubsub, channel))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _unsubscribe(self, pubsub: Any, channel: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            if channel not in self._channels:
                await (pubsub.sunsubscribe if self._sharded else pubsub.unsubscribe)(channel)

    async def _subscribe(self, pubsub: Any, *channels: str) -> None:
        await (pubsub.ssubscribe if self._sharded else pubsub.subscribe)(*channels)

    def _mark(self, *keys: str) -> None:
        self._dirty.update(keys)
        self._has_dirty.set()

    def _wake(self, channel: bytes, task_id: bytes) -> None:
        self._mark(*(key for key in woken_keys(channel, task_id) if key in self._groups))

    async def _listen(self) -> None:
        """Keep one pub/sub connection subscribed to the wanted channels, forever."""
        pause = 0.1
        while not self._stopped:
            pubsub: Any = self._listener.pubsub()
            try:
                channels = list(self._channels)
                await self._subscribe(pubsub, *channels)  # connects: nobody may use it before
                self._pubsub = pubsub  # from now on _want subscribes here itself
                if wanted_meanwhile := [c for c in self._channels if c not in channels]:
                    await self._subscribe(pubsub, *wanted_meanwhile)
                self._mark(*self._groups)  # catch up on whatever was published meanwhile
                pause, swept = 0.1, asyncio.get_running_loop().time()
                heard = swept
                while not self._stopped:
                    if self._sharded:
                        message = await pubsub.get_sharded_message(timeout=SHARD_POLL_S)
                    else:
                        message = await pubsub.get_message(timeout=SWEEP_S)
                    now = asyncio.get_running_loop().time()
                    if now - swept >= SWEEP_S:
                        self._mark(*self._groups)
                        swept = now
                    if message is not None:
                        heard = now
                    elif not self._sharded:
                        heard = await still_heard(pubsub, heard, now)
                    if message is None:
                        continue
                    if message["type"] == self._kinds[0]:
                        self._wake(message["channel"], message["data"])
                    elif message["type"] == self._kinds[1]:
                        confirmed = self._confirmed.get(message["channel"].decode())
                        if confirmed is not None and not confirmed.done():
                            confirmed.set_result(None)
            except (RedisError, OSError) as error:
                logger.warning("event bus: pub/sub connection lost (%s); reconnecting", error)
                RECONNECTS.inc()
                await refresh_topology(self._listener)
            except Exception:
                # Never let live events stop for the whole process.
                logger.exception("event bus: listener failed; reconnecting")
                RECONNECTS.inc()
            finally:
                self._pubsub = None
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _read(self) -> None:
        """Read every stream that has news once, and hand the events to its listeners."""
        while not self._stopped:
            await self._has_dirty.wait()
            self._has_dirty.clear()
            groups = [
                self._groups[key]
                for key in self._dirty
                if key in self._groups and self._groups[key].cursor is not None
            ]
            self._dirty.clear()
            if not groups:
                continue
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for group in groups:
                        pipe.xrange(group.key, f"({group.cursor}", "+", count=PAGE)
                    pages = await pipe.execute()
            except (RedisError, OSError) as error:
                logger.warning("event bus: reading streams failed (%s); retrying", error)
                self._mark(*(group.key for group in groups))
                await asyncio.sleep(0.5)
                continue
            for group, entries in zip(groups, pages, strict=True):
                for event_id, fields in entries:
                    group.cursor = event_id.decode()
                    event = decoded(event_id, fields)
                    if event is None:
                        continue
                    for listener in list(group.listeners):
                        listener.push(event)
                if len(entries) == PAGE:
                    self._mark(group.key)
