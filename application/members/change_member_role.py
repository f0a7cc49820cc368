"""ChangeMemberRole: move a member to another role."""

from __future__ import annotations

from uuid import UUID

from application.access import current_workspace
from application.caching import forget
from application.members._role_changes import check_change, explain_missed_write
from domain.cache import MEMBERS
from domain.entities import Membership, Role
from domain.ports import Cache, UnitOfWork


class ChangeMemberRole:
    """Raises LastOwnerError if the change would leave no owner."""

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(self, user_id: UUID, role: Role) -> Membership:
        async with self._uow as uow:
            await check_change(uow, user_id, role)
            workspace_id = current_workspace(uow)
            changed = await uow.memberships.set_role(workspace_id, user_id, role)
            if changed is None:
                await explain_missed_write(uow, user_id, role)
            await uow.commit()
        await forget(self._cache, workspace_id, MEMBERS)
        return changed
