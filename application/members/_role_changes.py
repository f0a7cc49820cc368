"""What changing and removing a member share: may the caller make the change,
and which error a write that matched no row means."""

from __future__ import annotations

from typing import NoReturn
from uuid import UUID

from application.access import caller_role, current_workspace
from domain.entities import Role
from domain.errors import NotFoundError
from domain.ports import UnitOfWork
from domain.rules import check_role_change


async def check_change(uow: UnitOfWork, user_id: UUID, new: Role | None) -> None:
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


async def explain_missed_write(uow: UnitOfWork, user_id: UUID, new: Role | None) -> NoReturn:
    """The write matched no row although the checks passed a moment before.

    A concurrent transaction committed in between: it removed the member, or
    took the caller's right to change it (row-level security then hides the
    row from the write). Checking again, in a fresh snapshot, says which.
    """
    await check_change(uow, user_id, new)
    raise NotFoundError("member not found")
