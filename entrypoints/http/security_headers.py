"""Headers that keep a browser from running anything an answer carries.

Keel's answers hold what users wrote (document titles, task output, workspace
names), so every answer says `X-Content-Type-Options: nosniff` (a JSON body
is never sniffed into HTML), and every answer but an HTML page says
`Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` (opened
in a browser tab or a frame, it may load and run nothing). An HTML page sets
its own policy (the console: entrypoints/http/console.py). Around the
request-context layer, so a refusal by any middleware and an unknown route
carry them too (the cached-read fast path in front adds the same two to its
answers); a header an answer already has is kept. A few lines of ASGI:
Litestar's response headers per layer miss the answers its middlewares give.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_CONTENT = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


def with_security_headers(app: ASGIApp) -> ASGIApp:
    async def secured(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower(): value for name, value in headers}
                if NOSNIFF[0] not in names:
                    headers.append(NOSNIFF)
                html = names.get(b"content-type", b"").startswith(b"text/html")
                if NO_CONTENT[0] not in names and not html:
                    headers.append(NO_CONTENT)
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, sending)

    return secured
