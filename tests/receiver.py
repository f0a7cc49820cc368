"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records
each request and answers from a script of statuses (then 200); HANG in the
script holds that request unanswered until the receiver closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, post
from standardwebhooks import Webhook as Verifier

from entrypoints.settings import Settings
from tests.live import serving

HANG = -1


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str = ""
    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every request's payload, each checked by the Standard Webhooks library
        (raises WebhookVerificationError for a bad or missing signature)."""
        verifier = Verifier(secret)
        return [verifier.verify(r.body, r.headers) for r in self.received]


@asynccontextmanager
async def receiving(settings: Settings, *script: int) -> AsyncIterator[Receiver]:
    receiver = Receiver(script=list(script))

    @post("/hook", status_code=200)
    async def hook(request: Request[Any, Any, Any]) -> Response[bytes]:
        receiver.received.append(Received(dict(request.headers), await request.body()))
        status = receiver.script.pop(0) if receiver.script else 200
        if status == HANG:
            await closing.wait()
            status = 200
        return Response(b"", status_code=status)

    closing = asyncio.Event()
    async with serving(settings, Litestar([hook], logging_config=None)) as base:
        receiver.url = f"{base}/hook"
        try:
            yield receiver
        finally:
            closing.set()
