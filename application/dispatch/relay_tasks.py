"""RelayTasks: committed, undispatched tasks move from the outbox to the queue."""

from __future__ import annotations

from application.events import publish
from domain.events import EventType, TaskEvent
from domain.ports import EventPublisher, JobQueue, TaskDispatcher


class RelayTasks:
    """Move committed, undispatched tasks to the queue; returns how many moved.

    A new task's `task.queued` event is published before its queue entry
    exists, so no worker can start it (and publish `task.started`) first.
    """

    BATCH = 200

    def __init__(self, dispatcher: TaskDispatcher, queue: JobQueue, events: EventPublisher) -> None:
        self._dispatcher, self._queue, self._events = dispatcher, queue, events

    async def execute(self) -> int:
        moved = 0
        while True:
            async with self._dispatcher.batch(self.BATCH) as items:
                queued = [
                    TaskEvent(item.ref.workspace_id, item.ref.task_id, EventType.QUEUED)
                    for item in items
                    if item.attempt == 1
                ]
                if queued:
                    await publish(self._events, *queued)
                await self._queue.enqueue(*items)
            moved += len(items)
            if len(items) < self.BATCH:
                return moved
