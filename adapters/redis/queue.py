"""The job queue on BullMQ (the official `bullmq` package: the same Lua
scripts as the Node library, so its dashboards read these queues).

BullMQ gives at-least-once delivery, lock renewal while a job runs, recovery
of jobs held by a dead worker (stalled checks), delayed jobs, priorities and
a failed set (our dead letters: a `job.retry()` of one, from any dashboard,
replays its task: application/dead_letters/; the newest KEEP_FAILED
are kept). Keys share one hash tag
(`{keel}`) so the queue also works on Redis Cluster. Node's bullmq and its
dashboards read these queues as their own: workers' connections carry Node's
names, jobs are named after the task's kind, and finished jobs and metrics
are kept, bounded (docs/tasks.md: Dead letters and BullMQ dashboards).

What it cannot do, Keel does around it: Postgres holds the task's state, so
a job carries only (workspace, task, creator) and the job id `<task>.<n>`
makes enqueueing attempt n idempotent; per-workspace fairness is a cap
checked when a worker claims (BullMQ's groups are a Pro feature).

The job's format (TaskJob) is defined here, once: the queue writes it, the
consumer (consumer.py) reads it.

On Redis Cluster (KEEL_REDIS_CLUSTER) BullMQ's connections are RedisCluster
clients (bullmq accepts one): every key has the `{keel}` tag, so the whole
queue lives in one slot, on one master at a time, and follows its failover.
The worker's is not pipelined there (PipelinedRedis is a single Redis), and
adding jobs loads BullMQ's scripts itself (`add_jobs`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from bullmq import Queue
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from adapters.redis.client import unavailable_as
from domain.entities import Dispatch, TaskRef

QUEUE = "tasks"
PREFIX = "{keel}"
STATES = ("waiting", "prioritized", "delayed", "active", "failed")
# The dead letters BullMQ keeps (the newest, for a week): every failed task
# would otherwise leave its job in Redis for good, and a user can make tasks
# fail. The task's own state and error stay in Postgres either way.
KEEP_FAILED = {"count": 10_000, "age": 7 * 24 * 3600}
# Finished attempts a dashboard can list (BullMQ's completed set): the last
# KEEP_COMPLETED, none older than KEEP_COMPLETED_S; Redis memory stays bounded.
KEEP_COMPLETED = 1000
KEEP_COMPLETED_S = 24 * 3600


def queue_connection(redis_url: str, cluster: bool) -> str | RedisCluster:
    """What a bullmq Queue connects with: the URL (bullmq makes its client), or
    on a cluster a RedisCluster seeded with it, decoding answers as bullmq's own."""
    return RedisCluster.from_url(redis_url, decode_responses=True) if cluster else redis_url


def job_id(ref: TaskRef, attempt: int) -> str:
    return f"{ref.task_id}.{attempt}"


def job_attempt(job_id: str) -> int:
    """The Keel attempt a job is (its id is `<task>.<attempt>`); 0 for another id."""
    attempt = job_id.rpartition(".")[2]
    return int(attempt) if attempt.isascii() and attempt.isdigit() else 0


class TaskJob(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a job carries: the task's reference (all a worker reads), for
    people reading a dashboard the Keel attempt the job is, and the trace of
    the request that created the task. Each attempt is a job of its own, so
    BullMQ's `attemptsMade` counts deliveries of that one attempt (1 once it
    finished). Unknown fields (a dashboard's) are ignored."""

    workspace_id: UUID
    task_id: UUID
    created_by: UUID
    attempt: int
    traceparent: str | None = None

    @classmethod
    def of(cls, dispatch: Dispatch) -> TaskJob:
        ref = dispatch.ref
        return cls(
            ref.workspace_id,
            ref.task_id,
            ref.created_by,
            dispatch.attempt,
            dispatch.trace_context or None,
        )

    @classmethod
    def decode(cls, data: dict[str, Any]) -> TaskJob:
        """Raises msgspec.ValidationError for data that is not a task's job."""
        return msgspec.convert(data, cls)

    def encode(self) -> dict[str, Any]:
        encoded: dict[str, Any] = msgspec.to_builtins(self)
        return encoded

    @property
    def ref(self) -> TaskRef:
        return TaskRef(self.workspace_id, self.task_id, self.created_by)


def _job(dispatch: Dispatch) -> dict[str, Any]:
    options: dict[str, Any] = {
        "jobId": job_id(dispatch.ref, dispatch.attempt),
        "removeOnComplete": {"count": KEEP_COMPLETED, "age": KEEP_COMPLETED_S},
        "removeOnFail": KEEP_FAILED,
        "attempts": 1,
    }
    if dispatch.priority:
        # BullMQ: 1 is the highest priority; Keel: 10 is.
        options["priority"] = 11 - dispatch.priority
    if dispatch.delay_ms > 0:
        options["delay"] = dispatch.delay_ms
    # Named after the task's kind, as dashboards list jobs; workers ignore the name.
    return {"name": dispatch.kind.value, "data": TaskJob.of(dispatch).encode(), "opts": options}


async def add_jobs(queue: Queue, jobs: list[dict[str, Any]]) -> None:
    """`queue.addBulk(jobs)`: one MULTI. redis-py's MULTI on a cluster does not
    load the scripts it runs (its plain pipelines do): when the slot's master
    lacks one (a new cluster, a promoted replica), load BullMQ's scripts on
    every master and add again; a job id already added makes adding it a no-op."""
    try:
        await queue.addBulk(jobs)
    except NoScriptError:
        for script in queue.redisConnection.commands.values():
            await queue.client.script_load(script.script)
        await queue.addBulk(jobs)


class BullMQJobQueue:
    def __init__(self, redis_url: str, prefix: str = PREFIX, cluster: bool = False) -> None:
        connection = queue_connection(redis_url, cluster)
        self._queue = Queue(QUEUE, {"connection": connection, "prefix": prefix})

    async def enqueue(self, *dispatches: Dispatch) -> None:
        if dispatches:
            # One MULTI for the lot (a relay batch), not a round trip per job.
            with unavailable_as("the task queue"):
                await add_jobs(self._queue, [_job(dispatch) for dispatch in dispatches])

    async def counts(self) -> dict[str, int]:
        counts = await self._queue.getJobCounts(*STATES)
        return {state: int(counts.get(state, 0)) for state in STATES}

    async def forget_dead_letter(self, ref: TaskRef, attempt: int) -> None:
        name = job_id(ref, attempt)
        # Only from the failed set: a dead letter retried through the queue is
        # a completed job now (`replayed`), kept with the others.
        if await self._queue.getJobState(name) == "failed":
            await self._queue.remove(name)

    async def close(self) -> None:
        await self._queue.close()
