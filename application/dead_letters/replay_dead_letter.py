"""ReplayDeadLetter: an owner queues a failed task again, over the API."""

from __future__ import annotations

from uuid import UUID

from application.access import caller_role, current_workspace
from application.dead_letters._replays import ACTION, replayed
from application.events import publish
from domain.entities import Role, Task
from domain.errors import NotFoundError
from domain.ports import EventPublisher, UnitOfWork
from domain.rules import require_role


class ReplayDeadLetter:
    """An owner replays a dead letter; NotFoundError unless the task is failed
    now (a second replay of the same dead letter finds none)."""

    def __init__(self, uow: UnitOfWork, events: EventPublisher) -> None:
        self._uow, self._events = uow, events

    async def execute(self, task_id: UUID) -> Task:
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.OWNER, ACTION)
            task = await uow.tasks.replay(current_workspace(uow), task_id)
            if task is None:
                raise NotFoundError("dead letter not found")
            await uow.commit()
        await publish(self._events, replayed(task, "owner"), deadline_s=0.5)
        return task
