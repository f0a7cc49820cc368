"""Bounds on request heads: their size, their number of header fields and the
time to receive one, in uvicorn's httptools protocol.

Written by hand because no server option does it. uvicorn's httptools
protocol reads a head of any size (llhttp sets no limit and uvicorn adds
none: a 64 MiB head was read and answered) with any number of fields, and
has no time limit for receiving one: `timeout_keep_alive` only closes a
kept-alive connection that is idle between requests, so a client sending a
byte a second (or nothing after connecting) holds its connection, and the
head it has sent so far, for ever. Its h11 protocol bounds only the size
(`h11_max_incomplete_event_size`, answered 400), counts no fields and has no
timeout either. Litestar sees a request only once its head is complete: too
late.

So this subclass counts, per request: the bytes received while a head is
incomplete (checked after each read, so at most one read past the limit is
ever held), the bytes of the URL and fields the parser hands over, and the
fields; past a limit it answers 431 and closes. A timer armed when a head is
awaited (on connecting, and when a response is complete) and stopped when
the head is complete closes the connection after `timeout_s`, answering 408
when part of a head had arrived. Every answer is a problem document.

`keel api` serves with it; under plain uvicorn, pass
`--http entrypoints.http.asgi:Protocol` (uvicorn 0.35+ takes an import path).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from entrypoints.settings import Settings

_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}


@dataclass(frozen=True, slots=True)
class HeadLimits:
    max_bytes: int = 16 * 1024
    max_fields: int = 100
    timeout_s: float = 10.0

    @classmethod
    def of(cls, settings: Settings) -> HeadLimits:
        return cls(settings.max_head_bytes, settings.max_header_fields, settings.head_timeout_s)


class _Refused(Exception):  # noqa: N818 - raised inside a parser callback to stop it
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HeadLimits] = HeadLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_head = True
        self._received = 0  # bytes read while the head was incomplete
        self._parsed = 0  # bytes of the URL and fields the parser handed over
        self._fields = 0
        self._refusal: tuple[int, str] | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            self._received += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._refusal is None:
                self.send_400_response("Invalid HTTP request received.")
                return
        if self._refusal is None and self._awaiting_head and self._received > self.limits.max_bytes:
            self._refusal = (431, f"the request head is over {self.limits.max_bytes} bytes")
        if self._refusal is not None:
            self._answer(*self._refusal)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_head, self._parsed, self._fields = True, 0, 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self.limits.max_fields:
            self._refuse(431, f"the request has over {self.limits.max_fields} header fields")
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head, self._received = False, 0
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._awaiting_head and not self.transport.is_closing():
            self._arm()

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > self.limits.max_bytes:
            self._refuse(431, f"the request head is over {self.limits.max_bytes} bytes")

    def _refuse(self, status: int, detail: str) -> None:
        self._refusal = (status, detail)
        raise _Refused  # the parser stops; data_received answers

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.limits.timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or (self.cycle and not self.cycle.response_complete):
            return  # a response is under way; the next head is awaited after it
        if self._received:
            self._answer(408, f"the request head did not arrive within {self.limits.timeout_s} s")
        else:
            self.transport.close()

    def _answer(self, status: int, detail: str) -> None:
        """A problem document, then the connection closes (the head is discarded)."""
        self._disarm()
        if self.transport.is_closing():
            return
        reason = _REASONS[status]
        body = json.dumps(
            {
                "type": f"urn:keel:problem:{'head-too-large' if status == 431 else 'head-timeout'}",
                "title": reason,
                "status": status,
                "detail": detail,
            }
        ).encode()
        head = [f"HTTP/1.1 {status} {reason}"]
        head += [f"{n.decode()}: {v.decode()}" for n, v in self.server_state.default_headers]
        head += [
            "content-type: application/problem+json",
            f"content-length: {len(body)}",
            "connection: close",
        ]
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        self.transport.close()


def bounded(limits: HeadLimits) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with these limits (uvicorn makes one per connection)."""
    return type("BoundedHttpTools", (BoundedHttpToolsProtocol,), {"limits": limits})
