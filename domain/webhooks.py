"""Task webhooks: a workspace's endpoint, its deliveries, and which targets
a webhook may reach.

A webhook URL is http(s) with a host and no credentials. By default it must
not reach anything but the public internet: every address its host resolves
to is checked (when it is configured and again when each request connects,
since DNS answers change), and loopback, private, link-local (cloud
metadata at 169.254.169.254), multicast, reserved, unspecified and shared
(carrier-grade NAT) addresses are refused. IPv4-mapped and 6to4 IPv6
addresses are judged as the IPv4 address they carry.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from uuid import UUID

from domain.errors import InvalidInputError

MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Webhook:
    """A workspace's webhook as its owners see it (the secret is shown once)."""

    workspace_id: UUID
    url: str
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WebhookSaved:
    """The outcome of configuring a webhook: the secret when it is new (created
    or rotated), None when it was kept."""

    webhook: Webhook
    created: bool
    secret: str | None


@dataclass(frozen=True, slots=True)
class Target:
    """Where a webhook URL points: its host and port."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed attempt to deliver a task event: attempt `attempt`, signed
    with `secret`, the body exactly as it will be sent."""

    workspace_id: UUID
    id: UUID
    attempt: int
    url: str
    secret: str
    body: str


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_url(url: str) -> Target:
    """The URL's host and port; raises InvalidInputError unless it is an
    http(s) URL with a host, no user or password, at most 2048 characters."""
    if not 1 <= len(url) <= MAX_URL_LENGTH:
        raise InvalidInputError(f"url must be 1 to {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInputError(f"url is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInputError("url must be an http:// or https:// URL")
    if not parts.hostname:
        raise InvalidInputError("url must name a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError("url must not carry a user name or password")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InvalidInputError("url must not contain spaces or control characters")
    return Target(parts.hostname, port or (443 if parts.scheme == "https" else 80))


def refusal(address: str) -> str | None:
    """Why a webhook may not connect to `address` (an IP literal as a resolver
    returns it), or None when it is a public address."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address inside IPv6 (mapped, or 6to4) is judged as itself.
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    for kind, found in (
        ("a loopback address", ip.is_loopback),
        ("the unspecified address", ip.is_unspecified),
        ("a link-local address", ip.is_link_local),
        ("a multicast address", ip.is_multicast),
        ("a private address", ip.is_private),
        ("a reserved address", ip.is_reserved),
        ("not a globally routable address", not ip.is_global),
    ):
        if found:
            return f"{ip} is {kind}"
    return None
