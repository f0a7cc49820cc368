"""The event bus for task progress, and the stream bookkeeping around it."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol
from uuid import UUID

from domain.events import StoredEvent, StreamGrant, StreamRef, TaskEvent


class EventPublisher(Protocol):
    """Appends task events to their task's and workspace's streams and wakes listeners."""

    async def publish(self, *events: TaskEvent) -> None:
        """Append `events` in order. A second terminal event of a task is dropped,
        so a task's stream ends exactly once. Raises UnavailableError when the
        bus cannot be reached."""
        ...


class Subscription(Protocol):
    async def next(self, timeout_s: float) -> StoredEvent | None:
        """The next event after the last one returned, or None when none came within
        `timeout_s`. Raises SubscriptionClosedError when this subscriber fell too far
        behind or the process is shutting down: resume from the last id returned."""
        ...

    async def batch(self, timeout_s: float) -> list[StoredEvent]:
        """As `next`, with every later event already received (none read from the
        store for it), in order; an empty list when none came within `timeout_s`."""
        ...


class EventBus(EventPublisher, Protocol):
    def subscribe(
        self, stream: StreamRef, after: str | None
    ) -> AbstractAsyncContextManager[Subscription]:
        """Events of `stream` after the position `after` (None: a task stream from its
        start, a workspace stream from now on), then live ones, each exactly once. If
        `after` is older than what is retained, the first event is a stream.reset."""
        ...

    async def newest(self, stream: StreamRef) -> StoredEvent | None:
        """The last event still in `stream`, if any."""
        ...

    def drain(self) -> None:
        """Close every open subscription and refuse new ones: the process is stopping."""
        ...


class StreamTickets(Protocol):
    """Single-use, short-lived credentials for browsers' EventSource."""

    async def issue(self, grant: StreamGrant, per_user: int) -> str | None:
        """A ticket for `grant`, valid once until `grant.expires_at`; None when
        the grant's user already holds `per_user` unused, unexpired tickets
        (checked and taken in one atomic step)."""
        ...

    async def redeem(self, ticket: str) -> StreamGrant | None:
        """The grant of an unused, unexpired ticket (which is used up now); None otherwise."""
        ...


class OpenStreams(Protocol):
    """How many event streams each user holds open, across every API process."""

    async def acquire(self, user_id: UUID, limit: int, ttl_s: float) -> str | None:
        """A slot for one more stream, held for `ttl_s` unless renewed; None at `limit`."""
        ...

    async def renew(self, user_id: UUID, slot: str, ttl_s: float) -> None:
        """Hold `slot` for `ttl_s` more (taking it again if it had lapsed), unless it
        was released: a renewal that arrives after the release never takes it back."""
        ...

    async def release(self, user_id: UUID, slot: str) -> None: ...
