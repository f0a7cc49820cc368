"""Use cases on a workspace's members."""

from __future__ import annotations

from uuid import UUID

from application.access import caller_role, current_workspace
from application.caching import forget
from application.pagination import check_limit, decode_cursor, make_page
from domain.cache import MEMBERS
from domain.entities import Membership, Page, Role
from domain.errors import NotFoundError
from domain.ports import Cache, UnitOfWork
from domain.rules import check_role_change


class ListMembers:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, limit: int, cursor: str | None) -> Page[Membership]:
        limit, after = check_limit(limit), decode_cursor(cursor)
        async with self._uow as uow:
            await caller_role(uow)
            rows = await uow.memberships.list(current_workspace(uow), after, limit + 1)
        return make_page(rows, limit, lambda member: member.user_id)


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


class ChangeMemberRole:
    """Raises LastOwnerError if the change would leave no owner."""

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(self, user_id: UUID, role: Role) -> Membership:
        async with self._uow as uow:
            actor = await caller_role(uow)
            workspace_id = current_workspace(uow)
            current = await uow.memberships.role_of(workspace_id, user_id)
            if current is None:
                raise NotFoundError("member not found")
            check_role_change(actor, current=current, new=role)
            changed = await uow.memberships.set_role(workspace_id, user_id, role)
            if changed is None:
                raise NotFoundError("member not found")
            await uow.commit()
        await forget(self._cache, workspace_id, MEMBERS)
        return changed


class RemoveMember:
    """Anyone may leave; admins remove non-owners; owners remove anyone.

    Raises LastOwnerError if the removal would leave no owner.
    """

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(self, user_id: UUID) -> None:
        async with self._uow as uow:
            actor = await caller_role(uow)
            workspace_id = current_workspace(uow)
            current = await uow.memberships.role_of(workspace_id, user_id)
            if current is None:
                raise NotFoundError("member not found")
            if user_id != uow.caller.user_id:
                check_role_change(actor, current=current, new=None)
            if not await uow.memberships.remove(workspace_id, user_id):
                raise NotFoundError("member not found")
            await uow.commit()
        await forget(self._cache, workspace_id, MEMBERS)
