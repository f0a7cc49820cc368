"""The task outbox, read across workspaces through the two SECURITY DEFINER
functions the migration created (dispatch_tasks, recover_tasks), and woken
by LISTEN on the channel that task writes notify on commit.

LISTEN needs a session of its own, which a transaction-mode pooler does not
keep: without a direct URL for it the outbox is polled every POLL_S instead.

A listening connection only reads, so a server gone silent (its host lost,
a failover to another address) would never be noticed: it is pinged after
every quiet wait and replaced when the ping is not answered in time, and
closing it waits no longer than that either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.tasks import CHANNEL
from domain.entities import Dispatch, TaskKind, TaskRef

DISPATCHER_ROLE = "keel_dispatcher"

_AS_DISPATCHER = sa.text("select set_config('role', :role, true)")
_TAKE = sa.text("select * from keel_private.dispatch_tasks(:size)")
_RECOVER = sa.text("select keel_private.recover_tasks(make_interval(secs => :after))")

# Without LISTEN, a committed task waits this long at most for the relay.
POLL_S = 0.25

logger = logging.getLogger("keel.dispatch")


class PgTaskDispatcher:
    def __init__(
        self, engine: AsyncEngine, listen_url: str | None, timeout_s: float = 30.0
    ) -> None:
        """`listen_url`: a direct (not pooled) Postgres URL to LISTEN on; None: poll.
        `timeout_s`: the longest wait for the listener's connection, ping or close."""
        self._engine = engine
        self._listen_url = listen_url
        self._timeout_s = timeout_s
        self._listener: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._polling_said = False

    @asynccontextmanager
    async def batch(self, size: int) -> AsyncIterator[list[Dispatch]]:
        async with self._engine.connect() as conn, conn.begin():
            await conn.execute(_AS_DISPATCHER, {"role": DISPATCHER_ROLE})
            rows = (await conn.execute(_TAKE, {"size": size})).all()
            yield [
                Dispatch(
                    ref=TaskRef(row.workspace_id, row.id, row.created_by),
                    attempt=row.attempts + 1,
                    priority=row.priority,
                    delay_ms=row.delay_ms,
                    kind=TaskKind(row.kind),
                    trace_context=row.trace_context,
                )
                for row in rows
            ]

    async def recover(self, redispatch_after_s: float) -> int:
        async with self._engine.connect() as conn, conn.begin():
            await conn.execute(_AS_DISPATCHER, {"role": DISPATCHER_ROLE})
            return int(await conn.scalar(_RECOVER, {"after": redispatch_after_s}) or 0)

    async def wait_for_work(self, timeout_s: float) -> None:
        if self._listen_url is None:
            if not self._polling_said:
                self._polling_said = True
                logger.info(
                    "no direct database URL to LISTEN on (KEEL_DATABASE_LISTEN_URL): "
                    "the task outbox is polled every %.2f s",
                    POLL_S,
                )
            await asyncio.sleep(min(timeout_s, POLL_S))
            return
        await self._listen()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        except TimeoutError:
            await self._ping()
        self._wake.clear()

    async def _listen(self) -> None:
        assert self._listen_url is not None
        if self._listener is not None and not self._listener.is_closed():
            return
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            self._listener = await asyncpg.connect(
                self._listen_url, timeout=self._timeout_s, command_timeout=self._timeout_s
            )
            await self._listener.add_listener(CHANNEL, self._notified)

    async def _ping(self) -> None:
        """Nothing was notified: is the listener still heard? If not, drop it
        (the next wait opens another)."""
        listener = self._listener
        if listener is None or listener.is_closed():
            return
        try:
            await listener.execute("select 1")  # bounded by its command_timeout
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            listener.terminate()
            self._listener = None

    def _notified(self, *_args: Any) -> None:
        self._wake.set()

    async def close(self) -> None:
        if self._listener is not None:
            # Past the timeout, asyncpg aborts the connection (and raises).
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._listener.close(timeout=self._timeout_s)
