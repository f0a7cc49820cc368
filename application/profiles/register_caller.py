"""RegisterCaller: an authenticated caller's profile, upserted on its first request."""

from __future__ import annotations

from uuid import UUID

from domain.entities import Caller, User
from domain.ports import UnitOfWorkFactory


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
