"""Dead letters: tasks that failed for good, and replaying them; one use case
per module.

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

from application.dead_letters.get_dead_letter import DeadLetter, GetDeadLetter
from application.dead_letters.list_dead_letters import ListDeadLetters
from application.dead_letters.replay_dead_letter import ReplayDeadLetter
from application.dead_letters.replay_retried_job import ReplayRetriedJob

__all__ = [
    "DeadLetter",
    "GetDeadLetter",
    "ListDeadLetters",
    "ReplayDeadLetter",
    "ReplayRetriedJob",
]
