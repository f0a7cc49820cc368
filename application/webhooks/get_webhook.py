"""GetWebhook: the workspace's webhook (owners only)."""

from __future__ import annotations

from application.access import caller_role, current_workspace
from domain.entities import Role
from domain.errors import NotFoundError
from domain.ports import UnitOfWork
from domain.rules import require_role
from domain.webhooks import Webhook


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
