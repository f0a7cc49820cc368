"""The job queue, the dispatcher that feeds it from the outbox, and the
consumer that runs what it holds."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from domain.entities import (
    Dispatch,
    TaskRef,
)


class JobQueue(Protocol):
    """Where dispatched tasks wait for a worker. At-least-once: a task may be
    delivered twice, and the guarded state changes make that harmless."""

    async def enqueue(self, *dispatches: Dispatch) -> None:
        """Put each attempt in the queue, all at once. Idempotent per (task,
        attempt): a second enqueue of the same attempt is a no-op."""
        ...

    async def counts(self) -> dict[str, int]:
        """Jobs by state: waiting, prioritized, delayed, active, failed (the dead letters)."""
        ...

    async def forget_dead_letter(self, ref: TaskRef, attempt: int) -> None:
        """Remove the dead letter of that attempt, if the queue still holds it
        (its task was replayed)."""
        ...


class TaskConsumer(Protocol):
    """Takes the queue's jobs and runs each one's task attempt (RunTask), in
    the task's own tenant context; what the attempt came to decides what the
    queue does with the job (completed, a dead letter, offered again later)."""

    def start(self, concurrency: int) -> None:
        """Take jobs, up to `concurrency` at once, until closed."""
        ...

    async def close(self, force: bool = False) -> None:
        """Take no more jobs; unless `force`, wait for the running ones to end."""
        ...


class TaskDispatcher(Protocol):
    """The outbox side of the queue: tasks whose enqueue intent committed."""

    def batch(self, size: int) -> AbstractAsyncContextManager[list[Dispatch]]:
        """Up to `size` undispatched tasks, marked dispatched if the block exits
        cleanly; left for the next batch if it raises."""
        ...

    async def recover(self, redispatch_after_s: float) -> int:
        """Requeue tasks whose worker lost its lease, and dispatch again those
        dispatched long ago but never claimed. Returns how many."""
        ...

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return when a task may be waiting (a commit notified it), or after `timeout_s`."""
        ...
