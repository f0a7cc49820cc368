"""Use cases on a workspace's webhook: read, configure, delete (owners only).

The URL is checked when it is configured: http(s), and unless private
targets are allowed, every address its host resolves to must be public
(domain/webhooks.py). The sender checks again at each connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from application.access import caller_role, current_workspace
from domain.entities import Role
from domain.errors import InvalidInputError, NotFoundError
from domain.ports import AddressResolver, UnitOfWork
from domain.retry import Backoff
from domain.rules import require_role
from domain.webhooks import Webhook, WebhookSaved, check_url, new_signing_secret, refusal


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


class GetWebhook:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self) -> Webhook:
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.OWNER, "reading the webhook")
            webhook = await uow.webhooks.get(current_workspace(uow))
        if webhook is None:
            raise NotFoundError("this workspace has no webhook")
        return webhook


class ConfigureWebhook:
    """Create or change the workspace's webhook; the signing secret is answered
    only when it is new (the webhook was created, or `rotate`)."""

    def __init__(
        self, uow: UnitOfWork, resolver: AddressResolver, settings: WebhookSettings
    ) -> None:
        self._uow, self._resolver, self._settings = uow, resolver, settings

    async def execute(self, url: str, rotate: bool) -> WebhookSaved:
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.OWNER, "configuring the webhook")
        # Resolving can take seconds: outside any transaction, so that slow
        # names cannot hold the pool's connections. Row-level security checks
        # the role again when the webhook is saved.
        await check_target(url, self._resolver, self._settings.allow_private)
        async with self._uow as uow:
            saved = await uow.webhooks.save(
                Webhook(current_workspace(uow), url), new_signing_secret(), rotate
            )
            await uow.commit()
        return saved


class DeleteWebhook:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self) -> None:
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.OWNER, "deleting the webhook")
            if not await uow.webhooks.delete(current_workspace(uow)):
                raise NotFoundError("this workspace has no webhook")
            await uow.commit()
