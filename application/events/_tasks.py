"""Reading the task a stream is about, in the caller's workspace."""

from __future__ import annotations

from uuid import UUID

from domain.entities import Task
from domain.errors import NotFoundError
from domain.ports import UnitOfWork


async def load_task(uow: UnitOfWork, workspace_id: UUID, task_id: UUID) -> Task:
    """Raises NotFoundError when the workspace has no such task."""
    async with uow:
        task = await uow.tasks.get(workspace_id, task_id)
    if task is None:
        raise NotFoundError("task not found")
    return task
