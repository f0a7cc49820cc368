"""The token issuer's public signing keys, published as a JWKS (RFC 7517).

PyJWT parses the keys (PyJWK); fetching and caching them is Keel's own,
because PyJWKClient's do not fit a server on an event loop: it fetches with
urllib, blocking the loop for as long as the issuer takes to answer, and it
fetches again on every token whose `kid` it does not know, so a stream of
tokens with made-up `kid`s becomes a stream of requests to the issuer. Here:

- the set is read from an http(s) URL (httpx, no redirects, bounded size
  and time) or a file, at the first use and again once it is `refresh_s` old;
- an unknown `kid` reads it again at most once per `min(refresh_s, 30 s)`
  (a rotated-in key is found; made-up ones cost nothing);
- one read at a time; a failed read keeps the keys it had (logged) and is
  tried again after `min(refresh_s, 5 s)`;
- only signing keys of the allowed algorithms (ES256, RS256) are kept: a
  symmetric (`oct`) key or any other is ignored, so a published key can
  never serve as an HMAC secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt

logger = logging.getLogger("keel.http")

ALGORITHMS = frozenset({"ES256", "RS256"})
_KEY_TYPES = frozenset({"EC", "RSA"})
MAX_JWKS_BYTES = 1024 * 1024
FETCH_TIMEOUT_S = 5.0
UNKNOWN_KID_GAP_S = 30.0
RETRY_S = 5.0


class KeysUnavailableError(Exception):
    """The key set has never been read successfully."""


class KeySet:
    def __init__(
        self,
        source: str,
        refresh_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._refresh_s = refresh_s
        self._unknown_gap_s = min(refresh_s, UNKNOWN_KID_GAP_S)
        self._retry_s = min(refresh_s, RETRY_S)
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._document: object = None
        self._read_at = -float("inf")  # the last attempt, failed or not
        self._due_at = -float("inf")
        self._lock = asyncio.Lock()
        self.generation = 0  # changes whenever the published keys do

    async def warm(self) -> None:
        """Read the set now unless it is fresh (at start-up: the first request need not wait)."""
        await self._read(lambda: self._clock() >= self._due_at)

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The signing key with this `kid`, or None; raises KeysUnavailableError."""
        if self._clock() >= self._due_at:
            await self._read(lambda: self._clock() >= self._due_at)
        elif self._keys is not None and kid not in self._keys:
            await self._read(lambda: self._clock() - self._read_at >= self._unknown_gap_s)
        if self._keys is None:
            raise KeysUnavailableError(f"the token keys could not be read from {self._where}")
        return self._keys.get(kid)

    async def _read(self, still_wanted: Callable[[], bool]) -> None:
        async with self._lock:
            if not still_wanted():
                return  # another request read them meanwhile
            self._read_at = self._clock()
            try:
                document = json.loads(await self._fetch())
                keys = parse(document)
            except (OSError, httpx.HTTPError, httpx.InvalidURL, ValueError) as error:
                self._due_at = self._read_at + self._retry_s
                logger.warning("reading the JWKS from %s failed: %s", self._where, error)
                return
            self._due_at = self._read_at + self._refresh_s
            if document != self._document:
                self._document, self._keys = document, keys
                self.generation += 1

    async def _fetch(self) -> bytes:
        if not self.source.startswith(("http://", "https://")):
            data = await asyncio.to_thread(Path(self.source).read_bytes)
        else:
            async with (
                httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False) as client,
                client.stream("GET", self.source, headers={"Accept": "application/json"}) as got,
            ):
                got.raise_for_status()
                data = b""
                async for chunk in got.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_JWKS_BYTES:
                        raise ValueError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
        if len(data) > MAX_JWKS_BYTES:
            raise ValueError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
        return data

    @property
    def _where(self) -> str:
        """The source without a query string (it may hold an API key)."""
        return self.source.split("?", 1)[0]


def parse(document: Any) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS document, by `kid`; ValueError if it is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('a JWKS is an object with a "keys" list')
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if (
            not isinstance(entry, dict)
            or entry.get("kty") not in _KEY_TYPES
            or entry.get("use", "sig") != "sig"
            or not isinstance(kid := entry.get("kid"), str)
            or entry.get("alg", "ES256" if entry["kty"] == "EC" else "RS256") not in ALGORITHMS
        ):
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        if key.algorithm_name in ALGORITHMS:
            keys[kid] = key
    return keys
