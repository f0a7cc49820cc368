"""GetDeadLetter: one dead letter with its attempt history."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from application.access import caller_role, current_workspace
from application.dead_letters._replays import ACTION
from domain.entities import AttemptRecord, Role, Task
from domain.errors import NotFoundError
from domain.ports import UnitOfWork
from domain.rules import require_role


@dataclass(frozen=True, slots=True)
class DeadLetter:
    task: Task
    history: list[AttemptRecord]


class GetDeadLetter:
    """One dead letter with its attempt history; NotFoundError unless the task
    is there and failed. Owners only."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, task_id: UUID) -> DeadLetter:
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.OWNER, ACTION)
            workspace_id = current_workspace(uow)
            task = await uow.tasks.get(workspace_id, task_id)
            if task is None or not task.dead_letter:
                raise NotFoundError("dead letter not found")
            history = await uow.tasks.history(workspace_id, task_id)
        return DeadLetter(task, history)
