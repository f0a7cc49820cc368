"""ReplayRetriedJob: the worker replays a dead letter an operator retried in the queue."""

from __future__ import annotations

from application.dead_letters._replays import replayed
from application.events import publish
from domain.entities import TaskRef
from domain.ports import EventPublisher, TaskStates


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
        await publish(self._events, replayed(task, "queue"))
        return True
