"""A TCP proxy that breaks the network between Keel and Postgres or Redis on demand.

Fault scenarios need a network that misbehaves while load runs: slow,
silent, or cutting every connection. This machine has no Docker (so no
Toxiproxy or Pumba container) and no root-free `tc netem`; the Python
packages that exist are clients of those tools (toxiproxy-python needs the
Toxiproxy server, blockade needs Docker). So this small asyncio proxy stands
between the app and a server, switchable at run time:

- `latency_s`: every chunk waits that long before it is passed on, both ways;
- `black_hole()` / `heal()`: connections are accepted, nothing is forwarded
  or answered, as in a network partition; on `heal()` what waited goes
  through (TCP would retransmit it);
- `reset()`: every open connection is aborted (the peers see a reset); new
  ones are served as before;
- `partition()`: every open connection is cut without either side being
  told (a host gone, a failover to another address): it never carries a
  byte again; new connections wait as in a black hole until `heal()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def postgres_target(url: str) -> Callable[[], Awaitable[Streams]]:
    """How to reach the server of a Postgres URL: TCP, or for a socket
    directory in `?host=` (the embedded server) its Unix socket."""
    parsed = make_url(url)
    directory, port = parsed.query.get("host"), parsed.port or 5432
    if isinstance(directory, str) and directory.startswith("/"):
        path = f"{directory}/.s.PGSQL.{port}"
        return lambda: asyncio.open_unix_connection(path)
    host = parsed.host or "127.0.0.1"
    return lambda: asyncio.open_connection(host, port)


def redis_target(url: str) -> Callable[[], Awaitable[Streams]]:
    """How to reach the server of a Redis URL (`unix://` or `redis://`)."""
    if url.startswith("unix://"):
        path = url.removeprefix("unix://").split("?")[0]
        return lambda: asyncio.open_unix_connection(path)
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    return lambda: asyncio.open_connection(host, port)


def through_postgres(url: str, port: int) -> str:
    """`url` with its server replaced by the proxy's port."""
    proxied: URL = (
        make_url(url).difference_update_query(["host", "port"]).set(host="127.0.0.1", port=port)
    )
    return proxied.render_as_string(hide_password=False)


def through_redis(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


class FaultProxy:
    def __init__(self, target: Callable[[], Awaitable[Streams]]) -> None:
        self._target = target
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut: set[asyncio.Task[None]] = set()
        self._closing = False
        self.latency_s = 0.0
        self.port = 0
        self.accepted = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        self._closing = True
        self.heal()
        self.reset()  # every connection's pipes end, and with them its task
        await asyncio.gather(*self._connections, return_exceptions=True)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def black_hole(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        self._flowing.set()

    def partition(self) -> None:
        self._cut.update(self._connections)
        self.black_hole()

    def reset(self) -> None:
        """Abort every open connection, both sides."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(to_client)
        to_server: asyncio.StreamWriter | None = None
        try:
            await self._flowing.wait()  # a black hole answers no new connection either
            if self._closing:
                return
            server, to_server = await self._target()
            self._writers.add(to_server)
            await asyncio.gather(
                self._pipe(task, client, to_server), self._pipe(task, server, to_client)
            )
        except OSError:
            pass  # the server is down or went away: the client sees its connection end
        finally:
            for writer in (to_client, to_server):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.transport.abort()
            self._connections.discard(task)
            self._cut.discard(task)

    async def _pipe(
        self,
        connection: asyncio.Task[None],
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
    ) -> None:
        try:
            while data := await source.read(65536):
                if self.latency_s:
                    await asyncio.sleep(self.latency_s)
                await self._flowing.wait()
                if connection in self._cut:
                    continue  # lost on the way
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            # One side ended: end the other (a half-open link is no use to either protocol).
            sink.transport.abort()
            with contextlib.suppress(OSError):
                await sink.wait_closed()
