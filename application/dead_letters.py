"""Dead letters: tasks that failed for good, and replaying them.

A dead letter is a failed task (its last attempt's queue job stays in
BullMQ's failed set). Replaying one queues the task again with a fresh
budget of `max_attempts` attempts: its result, error, progress and cancel
request are cleared, its attempts keep counting (each attempt keeps its own
queue job and history rows), a `replayed` history row records it, and
`task.replayed {attempts, max_attempts, by}` goes to its streams, after which
the task's stream runs (and ends) again.

Who may replay: the workspace's owners, over the API (`by: "owner"`); and
an operator, by retrying the dead letter's job in the queue (a dashboard's
`job.retry()`, `keel dead-letters replay`; `by: "queue"`), which the worker
honours in the task's own tenant context. Only a task that is failed now
replays, and through the queue only from the job of its last attempt: a
replayed or older dead letter retried again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from application.access import caller_role, current_workspace
from application.events import publish
from application.pagination import check_limit, decode_cursor, make_page
from domain.entities import AttemptRecord, Page, Role, Task, TaskRef, TaskStatus
from domain.errors import NotFoundError
from domain.events import EventType, TaskEvent
from domain.ports import EventPublisher, TaskStates, UnitOfWork
from domain.rules import require_role

_ACTION = "dead letters"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    task: Task
    history: list[AttemptRecord]


def _replayed(task: Task, by: str) -> TaskEvent:
    data = {"attempts": task.attempts, "max_attempts": task.max_attempts, "by": by}
    return TaskEvent(task.workspace_id, task.id, EventType.REPLAYED, data)


class ListDeadLetters:
    """The workspace's failed tasks, newest first. Owners only
    (PermissionDeniedError for other members, NotFoundError for non-members)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, limit: int, cursor: str | None) -> Page[Task]:
        limit, before = check_limit(limit), decode_cursor(cursor)
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.OWNER, _ACTION)
            rows = await uow.tasks.list(
                current_workspace(uow), TaskStatus.FAILED, None, before, limit + 1
            )
        return make_page(rows, limit, lambda task: task.id)


class GetDeadLetter:
    """One dead letter with its attempt history; NotFoundError unless the task
    is there and failed. Owners only."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def execute(self, task_id: UUID) -> DeadLetter:
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.OWNER, _ACTION)
            workspace_id = current_workspace(uow)
            task = await uow.tasks.get(workspace_id, task_id)
            if task is None or not task.dead_letter:
                raise NotFoundError("dead letter not found")
            history = await uow.tasks.history(workspace_id, task_id)
        return DeadLetter(task, history)


class ReplayDeadLetter:
    """An owner replays a dead letter; NotFoundError unless the task is failed
    now (a second replay of the same dead letter finds none)."""

    def __init__(self, uow: UnitOfWork, events: EventPublisher) -> None:
        self._uow, self._events = uow, events

    async def execute(self, task_id: UUID) -> Task:
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.OWNER, _ACTION)
            task = await uow.tasks.replay(current_workspace(uow), task_id)
            if task is None:
                raise NotFoundError("dead letter not found")
            await uow.commit()
        await publish(self._events, _replayed(task, "owner"), deadline_s=0.5)
        return task


class ReplayRetriedJob:
    """The worker's side: the queue delivered again the job of attempt
    `attempt`, after it had failed (an operator retried the dead letter).
    Returns whether the task was replayed."""

    def __init__(self, states: TaskStates, events: EventPublisher) -> None:
        self._states, self._events = states, events

    async def execute(self, ref: TaskRef, attempt: int) -> bool:
        task = await self._states.replay(ref, attempt)
        if task is None:
            return False
        await publish(self._events, _replayed(task, "queue"))
        return True
