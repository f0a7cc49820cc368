"""The unit of work: one transaction in one tenant context."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from domain.entities import (
    Caller,
)
from domain.ports.repositories import (
    FoundationRepository,
    MembershipRepository,
    TaskRepository,
    UserRepository,
    WebhookRepository,
    WorkspaceRepository,
)


class UnitOfWork(Protocol):
    """One database transaction in one tenant context.

    It rolls back on exit unless `commit` was awaited; repositories are
    usable only inside `async with`.
    """

    caller: Caller
    users: UserRepository
    workspaces: WorkspaceRepository
    memberships: MembershipRepository
    foundation: FoundationRepository
    tasks: TaskRepository
    webhooks: WebhookRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work bound to a caller (who, and in which workspace)."""

    def __call__(self, caller: Caller) -> UnitOfWork: ...
