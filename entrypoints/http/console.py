"""`GET /console`: a developer page that runs a task and shows its events live.

One static HTML file with its script and style inline, no external assets.
The page is public (it holds no data; the token is pasted into it and kept
in its memory). Its Content-Security-Policy allows exactly the inline script
and style by their hashes, and connections only to this origin.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from litestar import Response, get

PAGE = files("entrypoints.http").joinpath("console.html").read_text(encoding="utf-8")


def _hash(tag: str) -> str:
    found = re.search(rf"<{tag}>(.*?)</{tag}>", PAGE, re.DOTALL)
    if found is None:
        raise RuntimeError(f"console.html has no <{tag}>")
    digest = hashlib.sha256(found.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src {_hash('script')}; style-src {_hash('style')}; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@get("/console", include_in_schema=False, sync_to_thread=False)
def console() -> Response[str]:
    return Response(PAGE, media_type="text/html; charset=utf-8", headers=HEADERS)
