"""What the dead-letter use cases share: the action a refusal names, and the
event a replay publishes."""

from __future__ import annotations

from domain.entities import Task
from domain.events import EventType, TaskEvent

ACTION = "dead letters"


def replayed(task: Task, by: str) -> TaskEvent:
    """`task.replayed {attempts, max_attempts, by}`: `by` is "owner" or "queue"."""
    data = {"attempts": task.attempts, "max_attempts": task.max_attempts, "by": by}
    return TaskEvent(task.workspace_id, task.id, EventType.REPLAYED, data)
