"""Dead letters as the queue holds them: BullMQ's failed set, read and retried
as a dashboard does (for `keel dead-letters`, an operator's tool).

A failed job is the last attempt of a task that failed for good (its
failedReason is the task's error). Retrying it moves it back to the queue;
the worker sees a job that had finished and replays its task in the task's
own tenant context, if the task is still failed at that attempt
(application/dead_letters/). The queue knows no tenant: whoever can write
to Redis can retry any job, as from any BullMQ dashboard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bullmq import Queue
from bullmq.job import Job

from adapters.redis.queue import PREFIX, QUEUE, job_attempt, queue_connection

# A task id, or a job id `<task id>.<attempt>`: never a pattern (ZSCAN MATCH reads one).
_NAME = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}(\.[0-9]{1,9})?", re.ASCII)


@dataclass(frozen=True, slots=True)
class QueuedDeadLetter:
    job_id: str
    kind: str
    workspace_id: str
    task_id: str
    attempt: int
    reason: str
    failed_at: datetime | None
    deliveries: int  # BullMQ's attemptsMade: how often this job (one attempt) finished


def _dead_letter(job: Job) -> QueuedDeadLetter:
    data: dict[str, Any] = job.data
    finished = job.finishedOn
    return QueuedDeadLetter(
        job_id=str(job.id),
        kind=str(job.name),
        workspace_id=str(data.get("workspace_id")),
        task_id=str(data.get("task_id")),
        attempt=job_attempt(str(job.id)),
        reason=str(job.failedReason or ""),
        failed_at=datetime.fromtimestamp(finished / 1000, UTC) if finished else None,
        deliveries=int(job.attemptsMade),
    )


class BullMQDeadLetters:
    def __init__(self, redis_url: str, prefix: str = PREFIX, cluster: bool = False) -> None:
        connection = queue_connection(redis_url, cluster)
        self._queue = Queue(QUEUE, {"connection": connection, "prefix": prefix})

    async def newest(self, limit: int) -> list[QueuedDeadLetter]:
        """The newest `limit` dead letters, newest first."""
        jobs = await self._queue.getFailed(0, limit - 1)
        return [_dead_letter(job) for job in jobs if job is not None]

    async def find(self, name: str) -> QueuedDeadLetter | None:
        """A dead letter by job id (`<task>.<attempt>`), or a task's newest by task id."""
        job = await self._job(name)
        return None if job is None else _dead_letter(job)

    async def retry(self, name: str) -> QueuedDeadLetter | None:
        """Retry the dead letter as a dashboard does (`job.retry()`)."""
        job = await self._job(name)
        if job is None:
            return None
        dead_letter = _dead_letter(job)
        await job.retry("failed")
        return dead_letter

    async def _job(self, name: str) -> Job | None:
        if not _NAME.fullmatch(name):
            return None
        if "." not in name:
            ids = await self._failed_ids(f"{name}.*")
            if not ids:
                return None
            name = max(ids, key=job_attempt)
        if await self._queue.getJobState(name) != "failed":
            return None
        job: Job | None = await self._queue.getJob(name)
        return job

    async def _failed_ids(self, match: str) -> list[str]:
        found = self._queue.client.zscan_iter(self._queue.toKey("failed"), match=match)
        return [str(value[0]) async for value in found]

    async def close(self) -> None:
        await self._queue.close()
