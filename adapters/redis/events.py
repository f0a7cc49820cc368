"""Task events on Redis: capped Streams keep them, pub/sub only wakes listeners.

Written by hand because no library we found resumes a subscriber from a
position: Litestar's channels (pub/sub or stream backends) and broadcaster
hand subscribers bare payloads, without ids, and replay at most "the last N".
Here every event has its stream id, a reconnecting client says where it
stopped, and it gets exactly the events after that.

Layout (the `{ws:<uuid>}` hash tag keeps a workspace's keys in one Redis
Cluster slot, so the publish script works there too):

    keel:{ws:<uuid>}:events               every event of the workspace (capped)
    keel:{ws:<uuid>}:events:<task>        one task's events, the same ids (capped)
    keel:{ws:<uuid>}:events:<task>:ended  set with the task's terminal event
    keel:{ws:<uuid>}:wake                 pub/sub channel; a message names the task

Publishing is one script: append to both streams, refresh their retention
(24 h after the last event), publish a wake-up. A second terminal event of a
task is dropped, so every task stream ends exactly once, until a replay of the
task (`task.replayed`, a failed task queued again) lets it end once more.

Subscribing: one pub/sub connection per process, subscribed to the wake
channels of the workspaces that have listeners here, feeds one reader that
reads each stream once (XRANGE from where it stopped) and hands the events
to every local listener of that stream. A listener first joins (from then on
it receives live events), then replays the backlog after its `after`
position, then the live events, skipping any id it already returned. A lost
pub/sub connection (Redis restarted, `CLIENT KILL`) is re-opened with
backoff and every stream is read again from where the reader stopped, so a
wake-up lost meanwhile loses nothing; a sweep every few seconds covers a
wake-up lost any other way. Each listener buffers a bounded number of
events: one that falls behind is closed and resumes from its last id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.machinery.pipelining import BatchedCommands
from adapters.redis.client import unavailable_as
from domain.errors import SubscriptionClosedError, UnavailableError
from domain.events import START, EventType, StoredEvent, StreamRef, TaskEvent, position

logger = logging.getLogger("keel.events")

PUBLISHED = Counter("keel_events_published", "Task events appended to the bus", ["type"])
LISTENERS = Gauge("keel_event_listeners", "Event subscriptions open in this process")
RECONNECTS = Counter("keel_event_bus_reconnects", "Times the pub/sub connection was re-opened")
CLOSED = Counter("keel_event_subscriptions_closed", "Subscriptions closed early", ["reason"])

WHAT = "the event bus"
HUB_CHANNEL = "keel:{events}:hub"  # always subscribed, so the connection is never idle-empty
SWEEP_S = 5.0
PAGE = 500

# KEYS: workspace stream, task stream, task's "ended" marker.
# ARGV: event JSON, terminal ('1'), reopening ('2') or neither ('0'), workspace
# maxlen, task maxlen, retention s, wake channel, task id. Returns the new id, or
# false for a second terminal event.
_PUBLISH = """
if ARGV[2] == '1' and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[5]) then
  return false
end
if ARGV[2] == '2' then
  redis.call('DEL', KEYS[3])
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[1])
local same = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], id, 'e', ARGV[1])
if type(same) == 'table' and same.err then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return id
"""


class _Wire(msgspec.Struct, frozen=True):
    """An event as stored and as sent to browsers (API.md's `data`)."""

    task_id: UUID | None
    workspace_id: UUID
    type: EventType
    at: datetime
    data: dict[str, Any]


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Wire).decode


def _prefix(workspace_id: UUID) -> str:
    return f"keel:{{ws:{workspace_id}}}"


def stream_key(stream: StreamRef) -> str:
    base = f"{_prefix(stream.workspace_id)}:events"
    return base if stream.task_id is None else f"{base}:{stream.task_id}"


def _channel(workspace_id: UUID) -> str:
    return f"{_prefix(workspace_id)}:wake"


def _decoded(event_id: bytes, fields: dict[bytes, bytes]) -> StoredEvent | None:
    """The entry as an event; None (logged) for one this version cannot read,
    e.g. a type a newer worker wrote during a rolling deploy."""
    try:
        wire = _decode(fields[b"e"])
    except (KeyError, msgspec.ValidationError, msgspec.DecodeError):
        logger.warning("event bus: skipped an unreadable entry %r", event_id)
        return None
    event = TaskEvent(wire.workspace_id, wire.task_id, wire.type, wire.data, wire.at)
    return StoredEvent(event_id.decode(), event)


class _Group:
    """The local listeners of one stream, and where the reader stopped in it."""

    def __init__(self, key: str, workspace_id: UUID) -> None:
        self.key, self.workspace_id = key, workspace_id
        self.cursor: str | None = None  # None until the group is ready
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.listeners: set[_Subscription] = set()


class _Subscription:
    def __init__(self, bus: RedisEventBus, key: str, stream: StreamRef, buffer: int) -> None:
        self._bus, self._key, self._stream, self._buffer = bus, key, stream, buffer
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
        oldest = await self._bus.oldest_id(self._key)
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
                page = await self._bus.read_after(self._key, self._backlog_from)
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


class RedisEventBus:
    def __init__(
        self,
        redis: Redis,
        listener: Redis,
        *,
        task_maxlen: int = 10_000,
        workspace_maxlen: int = 10_000,
        retention_s: int = 24 * 3600,
        buffer: int = 1_000,
    ) -> None:
        """`redis` runs commands; `listener` is a client for the pub/sub connection
        only (no read timeout: it waits for wake-ups)."""
        self._redis, self._listener = redis, listener
        self._limits = (workspace_maxlen, task_maxlen, retention_s)
        self._buffer = buffer
        self._publish = redis.register_script(_PUBLISH)
        self._batch = BatchedCommands(redis)
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

    # Publishing

    async def publish(self, *events: TaskEvent) -> None:
        calls = [self._publish_call(event) for event in events]
        with unavailable_as(WHAT):
            # In order, in one pipeline with whatever else is published now.
            for answer in await self._batch.scripts(self._publish, calls):
                if isinstance(answer, Exception):
                    raise answer
        for event in events:
            PUBLISHED.labels(event.type.value).inc()

    def _publish_call(self, event: TaskEvent) -> tuple[list[str], list[Any]]:
        assert event.task_id is not None, "only stream.reset has no task"
        task = StreamRef(event.workspace_id, event.task_id)
        payload = _encode(
            _Wire(event.task_id, event.workspace_id, event.type, event.at, event.data)
        )
        keys = [
            stream_key(StreamRef(event.workspace_id)),
            stream_key(task),
            f"{stream_key(task)}:ended",
        ]
        args = [
            payload,
            "1" if event.type.terminal else "2" if event.type.reopens else "0",
            *self._limits,
            _channel(event.workspace_id),
            str(event.task_id),
        ]
        return keys, args

    # Subscribing

    @contextlib.asynccontextmanager
    async def subscribe(self, stream: StreamRef, after: str | None) -> AsyncIterator[Any]:
        if self._closing:
            raise SubscriptionClosedError("shutting down")
        self._start()
        key = stream_key(stream)
        subscription = _Subscription(self, key, stream, self._buffer)
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
        entries = await self._command(self._redis.xrevrange(stream_key(stream), "+", "-", count=1))
        return _decoded(*entries[0]) if entries else None

    async def oldest_id(self, key: str) -> str | None:
        entries = await self._command(self._redis.xrange(key, "-", "+", count=1))
        return entries[0][0].decode() if entries else None

    async def read_after(self, key: str, after: str) -> list[StoredEvent]:
        entries = await self._command(self._redis.xrange(key, f"({after}", "+", count=PAGE))
        decoded = (_decoded(event_id, fields) for event_id, fields in entries)
        return [event for event in decoded if event is not None]

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

    @staticmethod
    async def _command(awaitable: Any) -> Any:
        with unavailable_as(WHAT):
            return await awaitable

    def _start(self) -> None:
        if not self._runners:
            self._runners = [
                asyncio.create_task(self._listen(), name="keel-events-listen"),
                asyncio.create_task(self._read(), name="keel-events-read"),
            ]

    async def _join(self, key: str, workspace_id: UUID, listener: _Subscription) -> _Group:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key, workspace_id)
            try:
                await self._want(_channel(workspace_id))
                last = await self._command(self._redis.xrevrange(key, "+", "-", count=1))
                group.cursor = last[0][0].decode() if last else "0-0"
            except BaseException as error:
                del self._groups[key]
                self._unwant(_channel(workspace_id))
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

    async def _leave(self, group: _Group, listener: _Subscription) -> None:
        group.listeners.discard(listener)
        if not group.listeners and self._groups.get(group.key) is group:
            del self._groups[group.key]
            self._unwant(_channel(group.workspace_id))

    async def _want(self, channel: str) -> None:
        """Subscribe to `channel` (once per process) and wait until Redis confirms it."""
        self._channels[channel] = self._channels.get(channel, 0) + 1
        confirmed = self._confirmed.get(channel)
        if confirmed is None:
            confirmed = self._confirmed[channel] = asyncio.get_running_loop().create_future()
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.subscribe(channel)  # a lost connection resubscribes
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
                await pubsub.unsubscribe(channel)

    def _mark(self, *keys: str) -> None:
        self._dirty.update(keys)
        self._has_dirty.set()

    def _wake(self, channel: bytes, task_id: bytes) -> None:
        workspace = channel.decode()[len("keel:{ws:") : -len("}:wake")]
        base = f"keel:{{ws:{workspace}}}:events"
        keys = (base, f"{base}:{task_id.decode()}")
        self._mark(*(key for key in keys if key in self._groups))

    async def _listen(self) -> None:
        """Keep one pub/sub connection subscribed to the wanted channels, forever."""
        pause = 0.1
        while not self._stopped:
            pubsub: Any = self._listener.pubsub()
            try:
                channels = list(self._channels)
                await pubsub.subscribe(*channels)  # connects: nobody else may use it before
                self._pubsub = pubsub  # from now on _want subscribes here itself
                if wanted_meanwhile := [c for c in self._channels if c not in channels]:
                    await pubsub.subscribe(*wanted_meanwhile)
                self._mark(*self._groups)  # catch up on whatever was published meanwhile
                pause, swept = 0.1, asyncio.get_running_loop().time()
                while not self._stopped:
                    message = await pubsub.get_message(timeout=SWEEP_S)
                    now = asyncio.get_running_loop().time()
                    if now - swept >= SWEEP_S:
                        self._mark(*self._groups)
                        swept = now
                    if message is None:
                        continue
                    if message["type"] == "message":
                        self._wake(message["channel"], message["data"])
                    elif message["type"] == "subscribe":
                        confirmed = self._confirmed.get(message["channel"].decode())
                        if confirmed is not None and not confirmed.done():
                            confirmed.set_result(None)
            except (RedisError, OSError) as error:
                logger.warning("event bus: pub/sub connection lost (%s); reconnecting", error)
                RECONNECTS.inc()
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
                    event = _decoded(event_id, fields)
                    if event is None:
                        continue
                    for listener in list(group.listeners):
                        listener.push(event)
                if len(entries) == PAGE:
                    self._mark(group.key)
