"""An open stream's slot renewal ends with the stream, even when the Redis
client turns the cancellation into an error (as redis-py does mid-command)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator

import pytest

import application.events.feed
from application.events import Feed
from domain.errors import UnavailableError
from domain.events import StoredEvent


class _SwallowingSlots:
    """The second renewal blocks until cancelled, then fails as redis-py does:
    not with CancelledError. Any later renewal returns at once."""

    def __init__(self) -> None:
        self.renewals = 0
        self.in_renewal = asyncio.Event()

    async def acquire(self, user_id: uuid.UUID, limit: int, ttl_s: float) -> str | None:
        return "slot"

    async def renew(self, user_id: uuid.UUID, slot: str, ttl_s: float) -> None:
        self.renewals += 1
        if self.renewals != 2:
            return
        self.in_renewal.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise UnavailableError("connection closed") from None

    async def release(self, user_id: uuid.UUID, slot: str) -> None:
        return None


async def _heartbeats() -> AsyncGenerator[StoredEvent | None, None]:
    while True:
        yield None


async def test_closing_a_stream_mid_renewal_stops_its_renewals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(application.events.feed, "SLOT_RENEW_S", 0.001)
    slots = _SwallowingSlots()
    feed = Feed(_heartbeats(), slots, uuid.uuid4(), "slot")
    assert await anext(feed) is None
    await asyncio.wait_for(slots.in_renewal.wait(), 5)
    renewing = [t for t in asyncio.all_tasks() if "Feed._renew" in repr(t.get_coro())]
    assert len(renewing) == 1
    await feed.close()
    done, _ = await asyncio.wait(renewing, timeout=5)
    assert done, "the renewals went on after the stream closed"
    assert slots.renewals == 2
