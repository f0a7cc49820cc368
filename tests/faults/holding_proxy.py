"""A TCP proxy in front of Postgres that can hold back the end of the server's stream.

A terminated backend sends its FATAL error and then closes the socket, a
moment later. To catch a client in that moment for as long as a test needs,
the proxy forwards every byte at once but, while `hold_end` is set, keeps the
client's side open after the server's side has closed, until released.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

from sqlalchemy.engine import URL


class HoldingProxy:
    def __init__(self, url: URL) -> None:
        """Between TCP clients and the server of `url`, over TCP or, for a
        socket directory in `?host=` (the embedded server), its Unix socket."""
        directory = url.query.get("host")
        port = url.port or 5432
        if isinstance(directory, str) and directory.startswith("/"):
            path = f"{directory}/.s.PGSQL.{port}"
            self._connect = lambda: asyncio.open_unix_connection(path)
        else:
            host = url.host or "127.0.0.1"
            self._connect = lambda: asyncio.open_connection(host, port)
        self._released = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.hold_end = False
        self.ended = asyncio.Event()  # a server's side has ended, and that end was passed on
        self.port = 0

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
        self.release()
        assert self._server is not None
        self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def release(self) -> None:
        """Let the ends held back through (and any later one at once)."""
        self.hold_end = False
        self._released.set()

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        server, to_server = await self._connect()
        pipes = [
            asyncio.create_task(self._pipe(client, to_server, may_hold=False)),
            asyncio.create_task(self._pipe(server, to_client, may_hold=True)),
        ]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._pipes.difference_update(pipes)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, may_hold: bool
    ) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
            if may_hold and self.hold_end:
                await self._released.wait()
        except OSError:
            pass  # the other side went away: close this one too
        finally:
            sink.close()
            with contextlib.suppress(OSError):
                await sink.wait_closed()
            if may_hold:
                self.ended.set()
