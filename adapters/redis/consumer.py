"""The task queue's consumer: a bullmq Worker that runs each job's task
attempt and tells BullMQ what became of the job.

A job (TaskJob, queue.py) is read into the task's reference; the attempt
runs inside that task's log context and trace (a child of the request that
created the task). What it came to (domain/attempts.py) decides the job's
fate, here and nowhere else:

- failed for good: the job fails (a dead letter; its reason is the task's error);
- postponed (the workspace runs its maximum): the same job waits in the
  delayed set for the attempt's `delay_ms`;
- anything else, an attempt that Postgres or Redis interrupted too (the task
  is still queued or leased: recovery dispatches it again): the job completes.

A job delivered again after it finished was retried in the queue (a
dashboard's `job.retry()` of a dead letter): it replays the task instead.

Two changes to bullmq's worker, for throughput: its connection is a
PipelinedRedis (the commands of concurrent jobs go to Redis together, not one
round trip at a time), and with KEEL_WORKER_FETCHING (the default) it is a
FetchingWorker (adapters/machinery/fetching.py), which takes the next job in
the call that completes one.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Protocol, cast

import structlog
from bullmq import DelayedError, UnrecoverableError, Worker
from bullmq.job import Job
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.machinery.fetching import FetchingWorker
from adapters.machinery.pipelining import PipelinedRedis
from adapters.redis.queue import QUEUE, TaskJob, job_attempt
from adapters.tracing import continued
from domain.attempts import Outcome, Ran
from domain.entities import TaskRef
from domain.ports import JobQueue

# Above the longest block of bullmq's BZPOPMIN (10 s): a connection whose
# server went silent (a host gone, nothing closes the socket) fails its
# command and is replaced instead of holding the worker's loop for good.
SOCKET_TIMEOUT_S = 20.0
RETRY_DELAY_MS = 1000  # the worker's pause after a failed fetch (bullmq's runRetryDelay: 15 s)
# BullMQ's metrics (jobs completed and failed per minute, as its dashboards
# chart them): one data point a minute, kept for a week.
METRICS = {"maxDataPoints": 7 * 24 * 60}
ATTEMPTS = Counter("keel_task_attempts", "Task attempts this worker ran, by outcome", ["outcome"])
ATTEMPT_SECONDS = Histogram(
    "keel_task_attempt_seconds",
    "Time one task attempt took, by outcome",
    ["outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TRACER = trace.get_tracer("keel.worker")
logger = logging.getLogger("keel.worker")


class RunsTasks(Protocol):
    async def execute(self, ref: TaskRef) -> Ran: ...


class ReplaysJobs(Protocol):
    async def execute(self, ref: TaskRef, attempt: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    redis_url: str
    prefix: str
    lease_s: float
    fetching: bool = True
    cluster: bool = False  # redis_url is a Redis Cluster seed


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


def worker_connection(
    redis_url: str, client_name: str | None = None, cluster: bool = False
) -> PipelinedRedis | RedisCluster:
    """The client for a bullmq Worker: decoded answers (as BullMQ's own client),
    pipelined, and no retries inside redis-py: after a lost connection it
    would send a whole pipeline again, commands already answered included (a
    second job taken, a completion run twice). A failed command fails its
    caller; the worker's loop retries (RETRY_DELAY_MS), and a job whose
    completion failed is recovered by BullMQ's stalled check. Every pooled
    connection introduces itself as `client_name` when it connects. On a
    cluster it is a plain RedisCluster (PipelinedRedis is a single Redis). No
    command waits for its answer longer than SOCKET_TIMEOUT_S."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "retry": Retry(NoBackoff(), 0),
        "client_name": client_name,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": SOCKET_TIMEOUT_S,
    }
    if cluster:
        return RedisCluster.from_url(redis_url, **options)
    client = PipelinedRedis.from_url(redis_url, **options)
    return cast(PipelinedRedis, client)  # from_url builds `cls`; typeshed says Redis


class BullMQTaskConsumer:
    def __init__(
        self, run: RunsTasks, replay: ReplaysJobs, queue: JobQueue, settings: ConsumerSettings
    ) -> None:
        self._run, self._replay, self._queue, self._settings = run, replay, queue, settings
        self._worker: Worker | None = None

    def start(self, concurrency: int) -> None:
        """Take jobs, up to `concurrency` at once, until closed."""
        settings, name = self._settings, worker_name()
        client_name = worker_client_name(settings.prefix, QUEUE, name)
        lease_ms = int(settings.lease_s * 1000)
        kind = FetchingWorker if settings.fetching else Worker
        worker = kind(
            QUEUE,
            self._process,
            {
                "connection": worker_connection(settings.redis_url, client_name, settings.cluster),
                "name": name,
                "prefix": settings.prefix,
                "metrics": METRICS,
                "concurrency": concurrency,
                "lockDuration": lease_ms,
                "stalledInterval": lease_ms,
                "maxStalledCount": 10,
                "runRetryDelay": RETRY_DELAY_MS,
            },
        )
        # Read when the worker starts running (the next turn of the loop).
        worker.clientName = client_name
        worker.on("failed", lambda job, error: logger.error("job %s failed: %r", job.id, error))
        worker.on("error", lambda error, *_: logger.error("queue error: %r", error))
        self._worker = worker

    async def close(self, force: bool = False) -> None:
        """Take no more jobs; unless `force`, wait for those running."""
        if self._worker is not None:
            await self._worker.close(force=force)

    async def _process(self, job: Job, token: str) -> str:
        task = TaskJob.decode(job.data)
        ref = task.ref
        with (
            structlog.contextvars.bound_contextvars(
                task_id=str(ref.task_id),
                workspace_id=str(ref.workspace_id),
                user_id=str(ref.created_by),
            ),
            # A child of the request that created the task (its trace rode along).
            TRACER.start_as_current_span(
                "task attempt",
                context=continued(task.traceparent),
                kind=SpanKind.CONSUMER,
                attributes={"keel.task_id": str(ref.task_id), "messaging.system": "bullmq"},
            ) as span,
        ):
            if job.attemptsMade:
                # Delivered again after it had finished: someone retried it in
                # the queue. A failure to record the replay fails the job
                # again: it stays a dead letter, to be retried again.
                replayed = await self._replay.execute(ref, job_attempt(job.id))
                logger.info("task %s: retried job %s; replayed: %s", ref.task_id, job.id, replayed)
                return "replayed" if replayed else "skipped"
            started = time.monotonic()
            try:
                ran = await self._run.execute(ref)
            except Exception:
                # Postgres or Redis failed under us. The task is still queued (or
                # running on a lease that will expire): recovery dispatches it
                # again, so the job itself ends here rather than in the dead letters.
                logger.exception("task %s interrupted; it will be dispatched again", ref.task_id)
                ATTEMPTS.labels("interrupted").inc()
                return "interrupted"
            outcome = ran.outcome.value
            span.set_attribute("keel.outcome", outcome)
            ATTEMPTS.labels(outcome).inc()
            ATTEMPT_SECONDS.labels(outcome).observe(time.monotonic() - started)
            if ran.replayed_from is not None:
                await self._forget(ref, ran.replayed_from)
        return await self._settle(job, token, ran)

    async def _settle(self, job: Job, token: str, ran: Ran) -> str:
        """What BullMQ does with the job after the attempt `ran`."""
        if ran.outcome is Outcome.FAILED:
            # The dead letter's failedReason: what the task's owner sees as its error.
            raise UnrecoverableError(f"{ran.error} (attempt {ran.attempt})")
        if ran.outcome is Outcome.POSTPONED:
            # The same job waits in the delayed set.
            await job.moveToDelayed(int(time.time() * 1000) + ran.delay_ms, token)
            raise DelayedError
        return str(ran.outcome.value)

    async def _forget(self, ref: TaskRef, attempt: int) -> None:
        """A replay over the API leaves its dead letter in the queue's failed
        set; the replay's first attempt removes it (dashboards list it no more)."""
        try:
            await self._queue.forget_dead_letter(ref, attempt)
        except Exception:
            logger.exception("task %s: its replayed dead letter stays in the queue", ref.task_id)
