"""A failed task's job stays in BullMQ's failed set (the dead letters), but
not without end: a user can make tasks fail, and every job kept is Redis
memory. The queue keeps the newest KEEP_FAILED["count"] of them (for at most
KEEP_FAILED["age"] seconds); here the count is made small and more jobs fail
than it keeps."""

from __future__ import annotations

import uuid

import pytest
from bullmq import Queue, Worker
from bullmq.job import Job

from adapters.redis import queue as queue_module
from adapters.redis.queue import QUEUE, BullMQJobQueue
from domain.entities import Dispatch, TaskKind, TaskRef
from entrypoints.devstack.services import Services
from tests.integration.test_tasks import wait_until

KEEP = 3


@pytest.mark.parametrize("failing", [KEEP + 1, 3 * KEEP])
async def test_the_failed_set_keeps_only_the_newest(
    services: Services, monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    monkeypatch.setattr(queue_module, "KEEP_FAILED", {"count": KEEP, "age": 3600})
    prefix = "{dead-" + uuid.uuid4().hex[:8] + "}"
    jobs = BullMQJobQueue(services.redis_url, prefix)
    refs = [TaskRef(uuid.uuid4(), uuid.uuid4(), uuid.uuid4()) for _ in range(failing)]
    await jobs.enqueue(*(Dispatch(ref, 1, 0, 0, TaskKind.SUMMARIZE) for ref in refs))
    ran: list[str] = []

    async def fail(job: Job, token: str) -> None:
        ran.append(job.id)
        raise RuntimeError("the task failed")

    worker = Worker(QUEUE, fail, {"connection": services.redis_url, "prefix": prefix})
    counts = Queue(QUEUE, {"connection": services.redis_url, "prefix": prefix})
    try:

        async def all_ran() -> bool:
            waiting = await counts.getJobCounts("waiting", "active")
            return len(ran) == failing and not any(waiting.values())

        await wait_until(all_ran, timeout_s=30)
        # Each job's move to the failed set trims it, the last one's too.
        await wait_until(lambda: _failed_is(counts, KEEP), timeout_s=10)
    finally:
        await worker.close()
        await counts.obliterate(force=True)
        await counts.close()
        await jobs.close()


async def _failed_is(queue: Queue, expected: int) -> bool:
    return bool((await queue.getJobCounts("failed"))["failed"] == expected)
