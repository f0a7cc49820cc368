"""Feed: an open event stream, holding one of its user's stream slots."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from uuid import UUID

from domain.errors import UnavailableError
from domain.events import StoredEvent
from domain.ports import OpenStreams

SLOT_LEASE_S = 10.0  # an open stream's slot lapses this long after its last renewal
SLOT_RENEW_S = 3.0
SLOT_UNTIL_START_S = 1.0  # a slot taken for a stream that has not started yet


class Feed:
    """An open event stream: events (None when a heartbeat is due) until it ends.

    It holds one of its user's stream slots: briefly until it is first read,
    then, renewed on a timer, until `close()`. A client that stops reading
    still counts against the cap while its stream is open. Whoever serves the
    feed calls `close()` however the response ends, read or not (a client
    gone before the stream started too); if even that never happens (the
    process died), the slot lapses on its own. A renewal still on its way
    when the slot is released never takes it back (OpenStreams.renew).
    """

    def __init__(
        self,
        events: AsyncGenerator[StoredEvent | None, None],
        slots: OpenStreams,
        user_id: UUID,
        slot: str,
    ) -> None:
        self._events, self._slots, self._user_id, self._slot = events, slots, user_id, slot
        self._renewing: asyncio.Task[None] | None = None
        self._closed = False

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> StoredEvent | None:
        if self._renewing is None:
            await self._slots.renew(self._user_id, self._slot, SLOT_LEASE_S)
            self._renewing = asyncio.ensure_future(self._renew())
        return await anext(self._events)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._renewing is not None:
            self._renewing.cancel()
        # Its own task, and first: a cancelled close (the client went away)
        # must not cancel the release too.
        release = asyncio.ensure_future(self._slots.release(self._user_id, self._slot))
        release.add_done_callback(lambda done: done.cancelled() or done.exception())
        await self._events.aclose()

    async def _renew(self) -> None:
        # close() cancels this task, but redis-py can turn a cancellation that
        # lands mid-command into a connection error (suppressed below): the
        # closed flag, not the cancellation alone, ends the loop.
        while not self._closed:
            await asyncio.sleep(SLOT_RENEW_S)
            with contextlib.suppress(UnavailableError):
                await self._slots.renew(self._user_id, self._slot, SLOT_LEASE_S)
