"""GetMe: the caller's profile and every workspace they belong to."""

from __future__ import annotations

from dataclasses import dataclass

from domain.entities import User, WorkspaceAccess
from domain.errors import NotFoundError
from domain.ports import UnitOfWork


@dataclass(frozen=True, slots=True)
class Me:
    user: User
    memberships: list[WorkspaceAccess]


class GetMe:
    """The caller's profile and every workspace they belong to."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self) -> Me:
        async with self._uow as uow:
            user = await uow.users.get(uow.caller.user_id)
            if user is None:
                raise NotFoundError("profile not found")
            memberships = await uow.workspaces.list_for_user(user.id, None, None)
        return Me(user=user, memberships=memberships)
