"""AddMember: a signed-in user joins the workspace with a role."""

from __future__ import annotations

from uuid import UUID

from application.access import caller_role, current_workspace
from application.caching import forget
from domain.cache import MEMBERS
from domain.entities import Membership, Role
from domain.ports import Cache, UnitOfWork
from domain.rules import check_role_change


class AddMember:
    """Admins add members up to admin; owners add anyone.

    Raises ConflictError for an existing member, NotFoundError for a user
    who never signed in.
    """

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(self, user_id: UUID, role: Role) -> Membership:
        async with self._uow as uow:
            check_role_change(await caller_role(uow), current=None, new=role)
            workspace_id = current_workspace(uow)
            await uow.memberships.add(Membership(workspace_id, user_id, role))
            added = await uow.memberships.get(workspace_id, user_id)
            await uow.commit()
        await forget(self._cache, workspace_id, MEMBERS)
        assert added is not None, "a member just added is visible to the admin who added it"
        return added
