"""How webhooks are checked and delivered: the settings, and the check of a target URL."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.errors import InvalidInputError
from domain.ports import AddressResolver
from domain.retry import Backoff
from domain.webhooks import check_url, refusal


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """allow_private: let webhooks reach loopback and private networks (development)."""

    allow_private: bool = False
    max_attempts: int = 8
    lease_s: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)


async def check_target(url: str, resolver: AddressResolver, allow_private: bool) -> None:
    """Raise InvalidInputError unless `url` is a webhook URL that may be reached."""
    target = check_url(url)
    if allow_private:
        return
    for address in await resolver.resolve(target.host, target.port):
        if reason := refusal(address):
            raise InvalidInputError(f"url must reach a public address: {target.host}: {reason}")
