"""RemoveMember: a member leaves, or is removed from, the workspace."""

from __future__ import annotations

from uuid import UUID

from application.access import current_workspace
from application.caching import forget
from application.members._role_changes import check_change, explain_missed_write
from domain.cache import MEMBERS
from domain.ports import Cache, UnitOfWork


class RemoveMember:
    """Anyone may leave; admins remove non-owners; owners remove anyone.

    Raises LastOwnerError if the removal would leave no owner.
    """

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(self, user_id: UUID) -> None:
        async with self._uow as uow:
            await check_change(uow, user_id, None)
            workspace_id = current_workspace(uow)
            if not await uow.memberships.remove(workspace_id, user_id):
                await explain_missed_write(uow, user_id, None)
            await uow.commit()
        await forget(self._cache, workspace_id, MEMBERS)
