"""Use cases about the caller's own profile."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from domain.entities import Caller, User, WorkspaceAccess
from domain.errors import NotFoundError
from domain.ports import UnitOfWork, UnitOfWorkFactory


class RegisterCaller:
    """Upsert the profile of an authenticated caller on its first request.

    Lives for the whole process and remembers whom it registered already
    (bounded), so that only a caller's first request, or one with a changed
    email, costs a database round trip.
    """

    MAX_REMEMBERED = 50_000

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory
        self._registered: dict[UUID, str | None] = {}

    def known(self, user_id: UUID, email: str | None) -> bool:
        """Registered already, with this email: execute() would do nothing."""
        return user_id in self._registered and self._registered[user_id] == email

    async def execute(self, user_id: UUID, email: str | None) -> None:
        if self.known(user_id, email):
            return
        async with self._uow_factory(Caller(user_id)) as uow:
            await uow.users.upsert(User(id=user_id, email=email))
            await uow.commit()
        if len(self._registered) >= self.MAX_REMEMBERED:
            self._registered.clear()
        self._registered[user_id] = email


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
