"""A server-ended session, caught at each moment of its ending.

When a backend is terminated, Postgres sends a FATAL error and closes the
socket; asyncpg reads the error on one turn of the event loop and the end of
the stream on a later one. These tests stop the loop at each of those
moments, on a connection idle in the pool and on one inside a unit of work:

- "error unread": the error is in the socket, asyncpg has not read it;
- "error read, end unread": asyncpg has read the error (and is waiting for a
  ReadyForQuery that will never come) but not yet the end of the stream, so
  it still says the connection is open -- the moment that answered 500 with
  `cannot switch to state N; another operation (2) is in progress`;
- "all read": asyncpg knows the connection is closed.

An idle connection must never be handed out at any of them (the request gets
a new connection and its own rows); a unit of work caught in the middle must
fail with UnavailableError (503), and the pool must serve the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.postgres.database import create_engine
from adapters.postgres.uow import PgUnitOfWork
from domain.entities import Caller, User
from domain.errors import UnavailableError
from tests.conftest import Database
from tests.faults.holding_proxy import HoldingProxy

_TERMINATE = sa.text("select pg_terminate_backend(:pid)")
_PID = sa.text("select pg_backend_pid()")


async def _error_unread(proxy: HoldingProxy, peek: socket.socket) -> None:
    """Nothing more: the request runs before asyncio reads a byte."""


async def _error_read_end_unread(proxy: HoldingProxy, peek: socket.socket) -> None:
    # A peek answers b"" once only the end of the stream is left: asyncio has
    # read the error, and its next read (the end) runs after this task's turn.
    while peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):  # noqa: ASYNC110
        await asyncio.sleep(0)  # one turn of the loop at a time


async def _error_read_end_not_sent(proxy: HoldingProxy, peek: socket.socket) -> None:
    # The proxy holds the end back: nothing is left to read once asyncio has
    # read the error, and nothing tells asyncpg the connection is gone.
    with contextlib.suppress(BlockingIOError):
        while peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):  # noqa: ASYNC110
            await asyncio.sleep(0)
    for _ in range(10):
        await asyncio.sleep(0)


async def _all_read(proxy: HoldingProxy, peek: socket.socket) -> None:
    await asyncio.sleep(0.1)


Moment = Callable[[HoldingProxy, socket.socket], Awaitable[None]]
MOMENTS: dict[str, Moment] = {
    "error unread": _error_unread,
    "error read, end unread": _error_read_end_unread,
    "error read, end not sent yet": _error_read_end_not_sent,
    "all read": _all_read,
}


@pytest.fixture
async def proxy(own_database: Database) -> AsyncIterator[HoldingProxy]:
    async with HoldingProxy(make_url(own_database.runtime_url)) as proxy:
        yield proxy


@pytest.fixture
async def engine(own_database: Database, proxy: HoldingProxy) -> AsyncIterator[AsyncEngine]:
    url = (
        make_url(own_database.runtime_url)
        .difference_update_query(["host", "port"])
        .set(host="127.0.0.1", port=proxy.port)
    )
    engine = create_engine(url.render_as_string(hide_password=False), pool_size=1)
    yield engine
    proxy.release()  # closing a connection waits for the server's end
    await engine.dispose()


@pytest.fixture
async def caller(engine: AsyncEngine) -> Caller:
    caller = Caller(uuid.uuid4())
    async with PgUnitOfWork(engine, caller) as uow:
        await uow.users.upsert(User(caller.user_id, f"{caller.user_id.hex[:8]}@example.test"))
        await uow.commit()
    return caller


async def _own_user(engine: AsyncEngine, caller: Caller) -> User | None:
    async with PgUnitOfWork(engine, caller) as uow:
        return await uow.users.get(caller.user_id)


async def _readable(peek: socket.socket) -> None:
    """Until the error has reached the client's socket (the proxy runs in this loop)."""
    poller = select.poll()
    poller.register(peek.fileno(), select.POLLIN)
    deadline = time.monotonic() + 10
    while not poller.poll(0):
        assert time.monotonic() < deadline, "the terminated backend sent nothing"
        await asyncio.sleep(0.001)


@dataclass
class Backend:
    pid: int
    driver: asyncpg.Connection
    peek: socket.socket  # a duplicate of the driver's socket, only ever peeked at

    @classmethod
    async def of(cls, conn: AsyncConnection) -> Backend:
        pid = int(await conn.scalar(_PID) or 0)
        driver = (await conn.get_raw_connection()).driver_connection
        assert isinstance(driver, asyncpg.Connection)
        fileno = driver._transport.get_extra_info("socket").fileno()
        return cls(pid, driver, socket.socket(fileno=os.dup(fileno)))

    async def end_at(self, superuser: AsyncEngine, proxy: HoldingProxy, moment: str) -> None:
        """Terminate the backend and let the loop run until `moment` of its ending."""
        transport = self.driver._transport
        transport.pause_reading()  # asyncio reads nothing of it until resumed
        proxy.hold_end = moment == "error read, end not sent yet"
        proxy.ended.clear()
        async with superuser.connect() as conn:
            assert await conn.scalar(_TERMINATE, {"pid": self.pid})
        if not proxy.hold_end:
            await asyncio.wait_for(proxy.ended.wait(), 10)
        with self.peek:
            await _readable(self.peek)
            # Reading resumes on the loop's next turn, after this task's.
            transport.resume_reading()
            await MOMENTS[moment](proxy, self.peek)
        # The moment is the one named: asyncpg has noticed the end only at the last.
        assert self.driver.is_closed() == (moment == "all read")


@pytest.mark.parametrize("moment", MOMENTS)
async def test_a_pooled_connection_whose_session_ended_is_never_handed_out(
    engine: AsyncEngine, superuser: AsyncEngine, proxy: HoldingProxy, caller: Caller, moment: str
) -> None:
    async with engine.connect() as conn:
        backend = await Backend.of(conn)
    # Back in the pool, idle: now its backend is terminated.
    await backend.end_at(superuser, proxy, moment)
    user = await _own_user(engine, caller)
    assert user is not None
    assert user.id == caller.user_id


@pytest.mark.parametrize("moment", [m for m in MOMENTS if m != "error read, end not sent yet"])
async def test_any_user_of_the_engine_gets_a_new_connection_on_checkout(
    engine: AsyncEngine, superuser: AsyncEngine, proxy: HoldingProxy, moment: str
) -> None:
    # Not only units of work: the readiness probe and the worker's calls
    # check connections out too, and are served without an error.
    async with engine.connect() as conn:
        backend = await Backend.of(conn)
    await backend.end_at(superuser, proxy, moment)
    async with engine.connect() as conn:
        assert await conn.scalar(_PID) != backend.pid


async def _read_ending_midway(
    engine: AsyncEngine, superuser: AsyncEngine, proxy: HoldingProxy, caller: Caller, moment: str
) -> None:
    """A unit of work whose session ends, at `moment`, between two statements."""
    async with PgUnitOfWork(engine, caller) as uow:
        assert uow._conn is not None
        backend = await Backend.of(uow._conn)
        await backend.end_at(superuser, proxy, moment)
        await uow.users.get(caller.user_id)


@pytest.mark.parametrize("moment", MOMENTS)
async def test_a_session_ended_inside_a_unit_of_work_is_unavailable_and_discarded(
    engine: AsyncEngine, superuser: AsyncEngine, proxy: HoldingProxy, caller: Caller, moment: str
) -> None:
    with pytest.raises(UnavailableError):
        await _read_ending_midway(engine, superuser, proxy, caller, moment)
    user = await _own_user(engine, caller)
    assert user is not None
    assert user.id == caller.user_id
