"""CancelTask: a queued task never runs; a running one stops at its next step."""

from __future__ import annotations

from uuid import UUID

from application.access import caller_role, current_workspace
from application.events import publish
from domain.entities import Role, Task, TaskStatus
from domain.errors import NotFoundError
from domain.events import EventType, TaskEvent
from domain.ports import EventPublisher, UnitOfWork
from domain.rules import require_role


class CancelTask:
    """A queued task never runs; a running one stops at its next step."""

    def __init__(self, uow: UnitOfWork, events: EventPublisher) -> None:
        self._uow, self._events = uow, events

    async def execute(self, task_id: UUID) -> Task:
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.MEMBER, "cancelling tasks")
            task = await uow.tasks.cancel(current_workspace(uow), task_id)
            if task is None:
                raise NotFoundError("task not found")
            await uow.commit()
        if task.status is TaskStatus.CANCELLED:
            # A second cancelled event (a repeated cancel) is dropped by the bus.
            cancelled = TaskEvent(task.workspace_id, task.id, EventType.CANCELLED)
            await publish(self._events, cancelled, deadline_s=0.5)
        return task
