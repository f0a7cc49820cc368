"""Use cases on a workspace's members."""

from __future__ import annotations

from typing import NoReturn
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


async def _check_change(uow: UnitOfWork, user_id: UUID, new: Role | None) -> None:
    """May the caller move `user_id` to `new` (None removes; leaving oneself is always allowed)?

    Raises NotFoundError for a caller or member not in the workspace,
    PermissionDeniedError for a change above the caller's role.
    """
    actor = await caller_role(uow)
    current = await uow.memberships.role_of(current_workspace(uow), user_id)
    if current is None:
        raise NotFoundError("member not found")
    if not (new is None and user_id == uow.caller.user_id):
        check_role_change(actor, current=current, new=new)


async def _explain_missed_write(uow: UnitOfWork, user_id: UUID, new: Role | None) -> NoReturn:
    """The write matched no row although the checks passed a moment before.

    A concurrent transaction committed in between: it removed the member, or
    took the caller's right to change it (row-level security then hides the
    row from the write). Checking again, in a fresh snapshot, says which.
    """
    await _check_change(uow, user_id, new)
    raise NotFoundError("member not found")


class ChangeMemberRole:
    """Raises LastOwnerError if the change would leave no owner."""

    def __init__(self, uow: UnitOfWork, cache: Cache) -> None:
        self._uow, self._cache = uow, cache

    async def execute(self, user_id: UUID, role: Role) -> Membership:
        async with self._uow as uow:
            await _check_change(uow, user_id, role)
            workspace_id = current_workspace(uow)
            changed = await uow.memberships.set_role(workspace_id, user_id, role)
            if changed is None:
                await _explain_missed_write(uow, user_id, role)
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
            await _check_change(uow, user_id, None)
            workspace_id = current_workspace(uow)
            if not await uow.memberships.remove(workspace_id, user_id):
                await _explain_missed_write(uow, user_id, None)
            await uow.commit()
        await forget(self._cache, workspace_id, MEMBERS)
