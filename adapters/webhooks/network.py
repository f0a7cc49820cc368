"""Name resolution and connections for webhooks, checked where they happen.

httpx has no hook between resolving a name and connecting to it, so a URL
checked beforehand could resolve elsewhere a moment later (DNS rebinding).
httpcore (httpx's own transport layer) takes a network backend: this one
resolves the host itself, refuses the connection if any address it got is
one webhooks may not reach, and connects to a checked address. TLS still
verifies the URL's host name (httpcore sends it as SNI and checks the
certificate against it), whatever address was dialled.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Any

import httpcore

from domain.errors import InvalidInputError
from domain.webhooks import refusal


class RefusedTargetError(Exception):
    """The host resolves to an address webhooks may not reach."""


async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses as the system resolver gives them (an IP literal,
    in any spelling the resolver accepts, stands for itself). Raises OSError."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class SystemResolver:
    """The AddressResolver port over the system resolver."""

    async def resolve(self, host: str, port: int) -> list[str]:
        try:
            return await resolve(host, port)
        except OSError:
            raise InvalidInputError(f"url's host {host} does not resolve") from None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses `refusal` accepts (any, when `allow_private`)."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port)
        if not self._allow_private:
            for address in addresses:
                if reason := refusal(address):
                    raise RefusedTargetError(f"{host} resolves to a refused address: {reason}")
        error: Exception = OSError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failed:
                error = failed
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedTargetError("webhooks do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
