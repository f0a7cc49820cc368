"""ListTasks: the workspace's tasks, newest first, a page at a time."""

from __future__ import annotations

from application.access import caller_role, current_workspace
from application.pagination import check_limit, decode_cursor, make_page
from domain.entities import Page, Task, TaskKind, TaskStatus
from domain.ports import UnitOfWork


class ListTasks:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self, status: TaskStatus | None, kind: TaskKind | None, limit: int, cursor: str | None
    ) -> Page[Task]:
        limit, before = check_limit(limit), decode_cursor(cursor)
        async with self._uow as uow:
            await caller_role(uow)
            rows = await uow.tasks.list(current_workspace(uow), status, kind, before, limit + 1)
        return make_page(rows, limit, lambda task: task.id)
