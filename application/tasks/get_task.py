"""GetTask: one task of the workspace."""

from __future__ import annotations

from uuid import UUID

from application.access import caller_role, current_workspace
from domain.entities import Task
from domain.errors import NotFoundError
from domain.ports import UnitOfWork


class GetTask:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, task_id: UUID) -> Task:
        async with self._uow as uow:
            await caller_role(uow)
            task = await uow.tasks.get(current_workspace(uow), task_id)
        if task is None:
            raise NotFoundError("task not found")
        return task
