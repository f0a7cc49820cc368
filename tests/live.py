"""A real HTTP server in the test's event loop, and a real SSE client.

SSE responses never end on their own, so these tests talk to uvicorn over a
socket (the in-process test client waits for a complete response).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import uvicorn
from litestar import Litestar

from entrypoints.http.app import create_app
from entrypoints.http.heads import HeadLimits, bounded
from entrypoints.settings import Settings


@asynccontextmanager
async def serving(
    settings: Settings, app: Litestar | None = None, port: int = 0
) -> AsyncIterator[str]:
    """Serve the app on `port` (0: a free one); yields its base URL."""
    app = app or create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=bounded(HeadLimits.of(settings)),  # as `keel api` serves
        lifespan="on",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    running = asyncio.create_task(server.serve())
    while not server.started:
        assert not running.done(), "the server did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(running, 30)


@asynccontextmanager
async def live(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app served with `changes` to its settings."""
    async with (
        serving(msgspec.structs.replace(settings, **changes)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):
        yield http


async def stream_status(
    http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> int:
    """The status an event stream opens with (then it is closed)."""
    async with http.stream("GET", url, headers=headers or {}) as response:
        return response.status_code


@dataclass
class Message:
    id: str | None = None
    event: str | None = None
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.data))


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    """Parse an event stream (the WHATWG rules the tests need) message by message."""
    message, data = Message(), []
    async for line in response.aiter_lines():
        if line == "":
            message.data = "\n".join(data)
            if data or message.comments or message.retry is not None:
                yield message
            message, data = Message(), []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            message.comments.append(value)
        elif name == "id":
            message.id = value
        elif name == "event":
            message.event = value
        elif name == "data":
            data.append(value)
        elif name == "retry":
            message.retry = int(value)
