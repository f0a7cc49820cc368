"""The job queue on BullMQ (the official `bullmq` package: the same Lua
scripts as the Node library, so its dashboards read these queues).

BullMQ gives at-least-once delivery, lock renewal while a job runs, recovery
of jobs held by a dead worker (stalled checks), delayed jobs, priorities and
a failed set (our dead letters: a `job.retry()` of one, from any dashboard,
replays its task; application/dead_letters.py; the newest KEEP_FAILED
are kept). Keys share one hash tag
(`{keel}`) so the queue also works on Redis Cluster. Node's bullmq and its
dashboards read these queues as their own: workers' connections carry Node's
names, jobs are named after the task's kind, and finished jobs and metrics
are kept, bounded (docs/tasks.md: Dead letters and BullMQ dashboards).

What it cannot do, Keel does around it: Postgres holds the task's state, so
a job carries only (workspace, task, creator) and the job id `<task>.<n>`
makes enqueueing attempt n idempotent; per-workspace fairness is a cap
checked when a worker claims (BullMQ's groups are a Pro feature).

On Redis Cluster (KEEL_REDIS_CLUSTER) BullMQ's connections are RedisCluster
clients (bullmq accepts one): every key has the `{keel}` tag, so the whole
queue lives in one slot, on one master at a time, and follows its failover.
The worker's is not pipelined there (PipelinedRedis is a single Redis), and
adding jobs loads BullMQ's scripts itself (`add_jobs`).

Two changes to BullMQ's Python worker, for throughput:
- its connection is a PipelinedRedis: the worker sends every command of
  every job on one connection, one at a time (each job waits out the
  others' round trips); pipelined, the commands of concurrent jobs
  (fetching, completing, renewing locks) go to Redis together;
- FetchingWorker takes the next job in the call that completes one, as
  BullMQ's Node worker does (the Python worker completes without fetching,
  then asks for the next job: one more script call per job).
"""

from __future__ import annotations

import base64
import os
import socket
from typing import Any, cast

from bullmq import Queue, Worker
from bullmq.job import Job
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from adapters.machinery.pipelining import PipelinedRedis
from adapters.redis.client import unavailable_as
from domain.entities import Dispatch, TaskRef

QUEUE = "tasks"
RETRY_DELAY_MS = 1000  # the worker's pause after a failed fetch (bullmq's runRetryDelay: 15 s)
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
# BullMQ's metrics (jobs completed and failed per minute, as its dashboards
# chart them): one data point a minute, kept for a week.
METRICS = {"maxDataPoints": 7 * 24 * 60}


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_client_name(prefix: str, queue: str, worker: str | None = None) -> str:
    """The name a worker's connections carry, as Node's bullmq names them
    (`<prefix>:<base64 of the queue name>`, then `:w:<worker name>`): its
    `Queue.getWorkers()`, and the dashboards built on it, list the Redis
    clients so named. bullmq's Python worker names them `<prefix>:<queue>`,
    which Node's clients do not recognize."""
    name = f"{prefix}:{base64.b64encode(queue.encode()).decode()}"
    return f"{name}:w:{worker}" if worker else name


def queue_connection(redis_url: str, cluster: bool) -> str | RedisCluster:
    """What a bullmq Queue connects with: the URL (bullmq makes its client), or
    on a cluster a RedisCluster seeded with it, decoding answers as bullmq's own."""
    return RedisCluster.from_url(redis_url, decode_responses=True) if cluster else redis_url


def worker_connection(
    redis_url: str, client_name: str | None = None, cluster: bool = False
) -> PipelinedRedis | RedisCluster:
    """The client for a bullmq Worker: decoded answers (as BullMQ's own client),
    pipelined, and no retries inside redis-py: after a lost connection it
    would send a whole pipeline again, commands already answered included (a
    second job taken, a completion run twice). A failed command fails its
    caller; the worker's loop retries (RETRY_DELAY_MS), and a job whose
    completion failed is recovered by BullMQ's stalled check. Every pooled
    connection introduces itself as `client_name` when it connects."""
    if cluster:
        retry = Retry(NoBackoff(), 0)
        return RedisCluster.from_url(
            redis_url, decode_responses=True, retry=retry, client_name=client_name
        )
    client = PipelinedRedis.from_url(
        redis_url, decode_responses=True, retry=Retry(NoBackoff(), 0), client_name=client_name
    )
    return cast(PipelinedRedis, client)  # from_url builds `cls`; typeshed says Redis


class FetchingWorker(Worker):  # type: ignore[misc]  # bullmq has no type hints
    """bullmq's Worker, fetching the next job while completing one.

    The completing script (moveToFinished) takes the next job and locks it
    with the finished job's token when asked to; bullmq's Python worker never
    asks. Here every completion asks, unless the worker is closing or paused,
    and the job it took runs next in the same slot (the worker's run loop
    runs a job that a finished slot answers with). A job taken by a completion
    that was under way when `close()` or `pause()` was asked runs in the slot
    that took it, which they wait for. Processors must not complete their
    job themselves (Keel's return a value or raise): that completion would
    take a job too. This builds on the Worker's internals (its backend's
    moveToCompleted, nextJobFromJobData, the run loop): pyproject.toml keeps
    bullmq below 4, and tests/integration/test_pipelined_redis.py checks it.
    """

    def __init__(self, name: str, processor: Any, opts: dict[str, Any]) -> None:
        super().__init__(name, processor, opts)
        # Read when the worker starts running (the next turn of the loop).
        self.clientName = worker_client_name(opts["prefix"], name, opts.get("name"))
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


def job_id(ref: TaskRef, attempt: int) -> str:
    return f"{ref.task_id}.{attempt}"


def job_attempt(job_id: str) -> int:
    """The Keel attempt a job is (its id is `<task>.<attempt>`); 0 for another id."""
    attempt = job_id.rpartition(".")[2]
    return int(attempt) if attempt.isascii() and attempt.isdigit() else 0


def job_data(ref: TaskRef, attempt: int = 1) -> dict[str, Any]:
    """What a job carries: the task's reference (all a worker reads) and, for
    people reading a dashboard, the Keel attempt the job is. Each attempt is a
    job of its own, so BullMQ's `attemptsMade` counts deliveries of that one
    attempt (1 once it finished)."""
    return {
        "workspace_id": str(ref.workspace_id),
        "task_id": str(ref.task_id),
        "created_by": str(ref.created_by),
        "attempt": attempt,
    }


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
    data = job_data(dispatch.ref, dispatch.attempt)
    if dispatch.trace_context:
        data["traceparent"] = dispatch.trace_context
    # Named after the task's kind, as dashboards list jobs; workers ignore the name.
    return {"name": dispatch.kind.value, "data": data, "opts": options}


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
