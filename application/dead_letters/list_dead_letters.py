"""ListDeadLetters: the workspace's failed tasks, newest first."""

from __future__ import annotations

from application.access import caller_role, current_workspace
from application.dead_letters._replays import ACTION
from application.pagination import check_limit, decode_cursor, make_page
from domain.entities import Page, Role, Task, TaskStatus
from domain.ports import UnitOfWork
from domain.rules import require_role


class ListDeadLetters:
    """The workspace's failed tasks, newest first. Owners only
    (PermissionDeniedError for other members, NotFoundError for non-members)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, limit: int, cursor: str | None) -> Page[Task]:
        limit, before = check_limit(limit), decode_cursor(cursor)
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.OWNER, ACTION)
            rows = await uow.tasks.list(
                current_workspace(uow), TaskStatus.FAILED, None, before, limit + 1
            )
        return make_page(rows, limit, lambda task: task.id)
