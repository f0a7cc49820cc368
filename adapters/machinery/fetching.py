"""bullmq's Python worker, fetching the next job in the call that completes
one, as BullMQ's Node worker does (the Python worker completes without
fetching, then asks for the next job: one more script call per job)."""

from __future__ import annotations

from typing import Any

from bullmq import Worker
from bullmq.job import Job


class FetchingWorker(Worker):  # type: ignore[misc]  # bullmq has no type hints
    """bullmq's Worker, fetching the next job while completing one.

    The completing script (moveToFinished) takes the next job and locks it
    with the finished job's token when asked to; bullmq's Python worker never
    asks. Here every completion asks, unless the worker is closing or paused,
    and the job it took runs next in the same slot (the worker's run loop
    runs a job that a finished slot answers with). A job taken by a completion
    that was under way when `close()` or `pause()` was asked runs in the slot
    that took it, which they wait for. Processors must not complete their
    job themselves (they return a value or raise): that completion would
    take a job too. This builds on the Worker's internals (its backend's
    moveToCompleted, nextJobFromJobData, the run loop): pyproject.toml keeps
    bullmq below 4, and tests/integration/test_pipelined_redis.py checks it.
    """

    def __init__(self, name: str, processor: Any, opts: dict[str, Any]) -> None:
        super().__init__(name, processor, opts)
        self._taken: dict[str, list[Any]] = {}
        complete = self.backend.moveToCompleted

        async def complete_and_take(
            job: Job, value: Any, remove: Any, token: str, fetch_next: bool = True
        ) -> Any:
            take = not (self.closing or self.paused)
            done = await complete(job, value, remove, token, fetch_next=take)
            if take:
                self._taken[job.id] = done["result"]
            return done

        self.backend.moveToCompleted = complete_and_take

    async def processJob(self, job: Job, token: str) -> Job | None:  # noqa: N802 - bullmq's name
        try:
            await super().processJob(job, token)
        finally:
            taken = self._taken.pop(job.id, None)
        if taken is None:
            return None
        data, taken_id, limit_until, delay_until = taken
        following: Job | None = await self.nextJobFromJobData(
            data, taken_id, limit_until or 0, delay_until or 0, token
        )
        if following is None:
            return None
        self.emit("active", following, "waiting")
        if self.closing or self.paused:
            # Taken while close() or pause() was being asked: they wait for this
            # slot's task, not for one the run loop would start for the job.
            return await self.processJob(following, token)
        return following
