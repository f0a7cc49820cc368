"""DeleteWebhook: the workspace's webhook goes (owners only)."""

from __future__ import annotations

from application.access import caller_role, current_workspace
from domain.entities import Role
from domain.errors import NotFoundError
from domain.ports import UnitOfWork
from domain.rules import require_role


class DeleteWebhook:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self) -> None:
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.OWNER, "deleting the webhook")
            if not await uow.webhooks.delete(current_workspace(uow)):
                raise NotFoundError("this workspace has no webhook")
            await uow.commit()
