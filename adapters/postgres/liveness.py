"""Never hand out, or keep, a pooled connection whose server session has ended.

When Postgres ends a session (`pg_terminate_backend`, a restart, an idle
timeout), the backend sends a FATAL ErrorResponse and closes the socket. A
connection idle in the pool at that moment receives a message it did not ask
for: asyncpg takes it for a protocol error and waits for a ReadyForQuery that
never comes (its "error consume" state), and only on the next turn of the
event loop does it see the end of the stream and call itself closed. A
request that checks the connection out in between gets
`InternalClientError: cannot switch to state N; another operation (2) is in
progress` (asyncpg issues #784 and #1069), which SQLAlchemy does not count as
a disconnect (`is_closed()` is still false), so it answered 500 and the
connection went back to the pool. No rows can cross over: in that state
asyncpg discards everything until a ReadyForQuery and refuses every new
operation before it sends anything.

Written here because neither library has it: SQLAlchemy's pre-ping costs a
round trip per checkout and, for this state, raises the same error instead
of reconnecting. Two hooks instead:

- on checkout, a connection that is closed, or whose socket is readable while
  it is idle (the server spoke unprompted: only a FATAL error or the end of
  the stream can come on a Keel connection, which never LISTENs), is
  replaced by a new one before anyone uses it (one `poll`, no round trip).
  It cannot see a connection that has read the error before the end of the
  stream arrived; for that moment the unit of work starts once more on a new
  connection when its first statement finds the session gone (uow.py);
- on any error, one that says the session is gone (SQLSTATE class 08,
  57P01-57P05, or asyncpg's own protocol errors) marks the connection as
  disconnected, so SQLAlchemy discards it (and, as for any disconnect, the
  pool's other connections of that age) instead of returning it.

The errors themselves become UnavailableError (503) in `errors.py`.
"""

from __future__ import annotations

import select
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

# 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
# 57P04 database_dropped, 57P05 idle_session_timeout: the server ended the session.
_SESSION_ENDED_PREFIXES = ("08", "57P")


def guard(engine: AsyncEngine) -> None:
    """Install both hooks on `engine`."""
    event.listen(engine.sync_engine, "checkout", _refuse_ended)
    event.listen(engine.sync_engine, "handle_error", _discard_ended)


def session_ended(error: BaseException | None) -> bool:
    """Whether `error`, or an error it was raised from, says the session is gone."""
    seen = error
    while seen is not None:
        if isinstance(seen, asyncpg.InternalClientError):
            return True
        code = getattr(seen, "sqlstate", None)
        if isinstance(code, str) and code.startswith(_SESSION_ENDED_PREFIXES):
            return True
        seen = seen.__cause__
    return False


def _refuse_ended(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    driver = dbapi_connection.driver_connection
    if driver.is_closed() or _spoke_unprompted(driver):
        # The pool discards this connection and checks out a new one.
        raise DisconnectionError("the server ended this connection's session")


def _spoke_unprompted(driver: asyncpg.Connection) -> bool:
    # asyncpg has no public accessor for its socket; the transport is stable API
    # of asyncio (and uvloop) once reached. Without one, it cannot tell: the
    # unit of work's retry (uow.py) still replaces the connection.
    transport = getattr(driver, "_transport", None)
    socket = transport.get_extra_info("socket") if transport is not None else None
    if socket is None:
        return False
    poller = select.poll()
    poller.register(socket.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _discard_ended(context: ExceptionContext) -> None:
    if session_ended(context.original_exception):
        context.is_disconnect = True
