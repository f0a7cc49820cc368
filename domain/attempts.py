"""What one attempt of a task came to: the worker's use case (RunTask) says
it, the queue's consumer turns it into what the queue does with the job."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    RETRYING = "retrying"  # a later attempt is due: the outbox enqueues it
    FAILED = "failed"  # for good: the queue keeps it in its dead-letter set
    POSTPONED = "postponed"  # the workspace runs its maximum already: offer it again later
    SKIPPED = "skipped"  # nothing to run: cancelled, finished, or another worker's


@dataclass(frozen=True, slots=True)
class Ran:
    """What one attempt came to: its outcome, the attempt it was (0 when none
    started), for a failure the reason the task's owner sees (`error`), for a
    postponement how long to wait before offering the same job again
    (`delay_ms`), and for the first attempt after a replay, the attempt it
    replayed."""

    outcome: Outcome
    attempt: int = 0
    error: str | None = None
    replayed_from: int | None = None
    delay_ms: int = 0
