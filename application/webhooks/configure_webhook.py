"""ConfigureWebhook: create or change the workspace's webhook (owners only)."""

from __future__ import annotations

from application.access import caller_role, current_workspace
from application.webhooks.settings import WebhookSettings, check_target
from domain.entities import Role
from domain.ports import AddressResolver, UnitOfWork
from domain.rules import require_role
from domain.webhooks import Webhook, WebhookSaved, new_signing_secret


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
