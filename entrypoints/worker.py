"""`keel worker`: runs tasks from the queue, relays the outbox, recovers tasks,
delivers task webhooks.

Each job runs RunTask in the task's own tenant context (its workspace and its
creator: row-level security applies to workers too). SIGTERM or SIGINT: stop
taking work, let in-flight tasks finish within the grace period; a task still
running after it keeps its lease until the lease expires and another worker
takes it over (its attempt counts). A shutdown that still hangs SHUTDOWN_S
after the grace period (a dead Redis or Postgres) ends the process anyway.

With KEEL_WORKER_METRICS_PORT set, the worker serves Prometheus metrics:
attempts by outcome and their duration, the queue's jobs by state (failed:
the dead letters), and the events it published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import structlog
from bullmq import DelayedError, UnrecoverableError
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from adapters.redis.queue import (
    METRICS,
    QUEUE,
    RETRY_DELAY_MS,
    FetchingWorker,
    job_attempt,
    worker_client_name,
    worker_connection,
    worker_name,
)
from adapters.tracing import continued
from application.dead_letters import ReplayRetriedJob
from application.deliver_webhooks import DeliverWebhooks
from application.dispatch import RecoverTasks, RelayTasks
from application.run_task import Outcome, RunnerSettings, RunTask
from domain.entities import TaskRef
from domain.errors import UnavailableError
from domain.ports import JobQueue, TaskDispatcher
from entrypoints.ioc import make_worker_container
from entrypoints.settings import Settings

logger = logging.getLogger("keel.worker")
RELAY_IDLE_S = 1.0
RECOVER_EVERY_S = 5.0
GRACE_S = 20.0
SHUTDOWN_S = 5.0  # after the grace period, for closing connections
QUEUE_METRICS_EVERY_S = 5.0
WEBHOOK_IDLE_S = 0.5

ATTEMPTS = Counter("keel_task_attempts", "Task attempts this worker ran, by outcome", ["outcome"])
ATTEMPT_SECONDS = Histogram(
    "keel_task_attempt_seconds",
    "Time one task attempt took, by outcome",
    ["outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TRACER = trace.get_tracer("keel.worker")
QUEUE_JOBS = Gauge("keel_queue_jobs", "Jobs in the task queue by state", ["state"])


async def _forever(name: str, step: Callable[[], Awaitable[Any]], pause_s: float) -> None:
    """Run `step` again and again; a failure is logged and retried after a pause.

    redis-py can turn a cancellation into a timeout or connection error (its
    read timeouts): a loop that was asked to stop stops, whatever it caught.
    """
    this = asyncio.current_task()
    assert this is not None
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except UnavailableError as error:
            # Postgres or Redis cannot take it now (down, or Redis full): one line, no traceback.
            if this.cancelling():
                raise asyncio.CancelledError from None
            logger.warning("%s failed: %s; trying again in %.0f s", name, error.detail, pause_s)
            await asyncio.sleep(pause_s)
        except Exception:
            if this.cancelling():
                raise asyncio.CancelledError from None
            logger.exception("%s failed; trying again in %.0f s", name, pause_s)
            await asyncio.sleep(pause_s)


async def run_worker(settings: Settings, concurrency: int, stop: asyncio.Event) -> None:
    settings.require("database_url", "redis_url")
    # Claims, heartbeats and finishes of tasks go in batches (PgTaskStates), so
    # the pool does not grow with --concurrency: a benchmark worker running 128
    # tasks at once used 5-6 connections.
    container = make_worker_container(settings)
    run_task = await container.get(RunTask)
    replay = await container.get(ReplayRetriedJob)
    relay = await container.get(RelayTasks)
    recover = await container.get(RecoverTasks)
    deliver_webhooks = await container.get(DeliverWebhooks)
    dispatcher = await container.get(TaskDispatcher)
    queue = await container.get(JobQueue)
    settings_postpone_ms = (await container.get(RunnerSettings)).postpone_ms

    async def forget(ref: TaskRef, attempt: int) -> None:
        """A replay over the API leaves its dead letter in the queue's failed
        set; the replay's first attempt removes it (dashboards list it no more)."""
        try:
            await queue.forget_dead_letter(ref, attempt)
        except Exception:
            logger.exception("task %s: its replayed dead letter stays in the queue", ref.task_id)

    async def process(job: Any, token: str) -> str:
        ref = TaskRef(
            UUID(job.data["workspace_id"]),
            UUID(job.data["task_id"]),
            UUID(job.data["created_by"]),
        )
        with (
            structlog.contextvars.bound_contextvars(
                task_id=str(ref.task_id),
                workspace_id=str(ref.workspace_id),
                user_id=str(ref.created_by),
            ),
            # A child of the request that created the task (its trace rode along).
            TRACER.start_as_current_span(
                "task attempt",
                context=continued(job.data.get("traceparent")),
                kind=SpanKind.CONSUMER,
                attributes={"keel.task_id": str(ref.task_id), "messaging.system": "bullmq"},
            ) as span,
        ):
            if job.attemptsMade:
                # Delivered again after it had finished: someone retried it in
                # the queue (a dashboard's job.retry() of a dead letter). A
                # failure to record the replay fails the job again: it stays
                # a dead letter, to be retried again.
                replayed = await replay.execute(ref, job_attempt(job.id))
                logger.info("task %s: retried job %s; replayed: %s", ref.task_id, job.id, replayed)
                return "replayed" if replayed else "skipped"
            started = time.monotonic()
            try:
                ran = await run_task.execute(ref)
            except Exception:
                # Postgres or Redis failed under us. The task is still queued (or
                # running on a lease that will expire): recovery dispatches it
                # again, so the job itself ends here rather than in the dead letters.
                logger.exception("task %s interrupted; it will be dispatched again", ref.task_id)
                ATTEMPTS.labels("interrupted").inc()
                return "interrupted"
            outcome = ran.outcome
            span.set_attribute("keel.outcome", outcome.value)
            ATTEMPTS.labels(outcome.value).inc()
            ATTEMPT_SECONDS.labels(outcome.value).observe(time.monotonic() - started)
            if ran.replayed_from is not None:
                await forget(ref, ran.replayed_from)
        if outcome is Outcome.FAILED:
            # The dead letter's failedReason: what the task's owner sees as its error.
            raise UnrecoverableError(f"{ran.error} (attempt {ran.attempt})")
        if outcome is Outcome.POSTPONED:
            # The workspace runs its maximum: the same job waits in the delayed set.
            await job.moveToDelayed(int(time.time() * 1000) + settings_postpone_ms, token)
            raise DelayedError
        return str(outcome.value)

    async def relay_step() -> None:
        await relay.execute()
        await dispatcher.wait_for_work(RELAY_IDLE_S)

    async def recover_step() -> None:
        await recover.execute()
        await asyncio.sleep(RECOVER_EVERY_S)

    async def webhook_step() -> None:
        if await deliver_webhooks.execute() < DeliverWebhooks.BATCH:
            await asyncio.sleep(WEBHOOK_IDLE_S)

    async def queue_metrics_step() -> None:
        for state, count in (await queue.counts()).items():
            QUEUE_JOBS.labels(state).set(count)
        await asyncio.sleep(QUEUE_METRICS_EVERY_S)

    assert settings.redis_url is not None
    name = worker_name()
    client_name = worker_client_name(settings.queue_prefix, QUEUE, name)
    worker = FetchingWorker(
        QUEUE,
        process,
        {
            "connection": worker_connection(
                settings.redis_url, client_name, settings.redis_cluster
            ),
            "name": name,
            "prefix": settings.queue_prefix,
            "metrics": METRICS,
            "concurrency": concurrency,
            "lockDuration": int(settings.task_lease_s * 1000),
            "stalledInterval": int(settings.task_lease_s * 1000),
            "maxStalledCount": 10,
            "runRetryDelay": RETRY_DELAY_MS,
        },
    )
    worker.on("failed", lambda job, error: logger.error("job %s failed: %r", job.id, error))
    worker.on("error", lambda error, *_: logger.error("queue error: %r", error))
    loops = [
        asyncio.create_task(_forever("relay", relay_step, RELAY_IDLE_S)),
        asyncio.create_task(_forever("recovery", recover_step, RECOVER_EVERY_S)),
        asyncio.create_task(_forever("webhooks", webhook_step, RELAY_IDLE_S)),
    ]
    metrics_server = None
    if port := settings.worker_metrics_port:
        loops.append(
            asyncio.create_task(
                _forever("queue metrics", queue_metrics_step, QUEUE_METRICS_EVERY_S)
            )
        )
        try:
            metrics_server, _ = start_http_server(port, addr=settings.host)
            logger.info("metrics on http://%s:%s/metrics", settings.host, port)
        except OSError as error:
            # Tasks matter more than their metrics: run without them.
            logger.error("no metrics: cannot listen on %s:%s (%s)", settings.host, port, error)
    logger.info("worker started: concurrency %s", concurrency)
    try:
        await stop.wait()
        logger.info("stopping: no new tasks; in-flight ones get %.0f s", GRACE_S)
        # bullmq's close() shields itself from cancellation, so wait_for would
        # wait for the longest task: race it against the grace period instead.
        graceful = asyncio.ensure_future(worker.close())
        await asyncio.wait({graceful}, timeout=GRACE_S)
        if not graceful.done():
            logger.warning(
                "grace period over: tasks still running keep their lease until it"
                " expires, then another worker takes them over"
            )
            await worker.close(force=True)
            graceful.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await graceful
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await worker.close(force=True)
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        await container.close()


def _give_up() -> None:
    logger.error("shutdown took longer than %.0f s; exiting now", GRACE_S + SHUTDOWN_S)
    os._exit(1)


def main(settings: Settings, concurrency: int) -> int:
    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping() -> None:
            stop.set()
            # Whatever hangs on the way out (a Redis or Postgres that died with
            # the parent), the process ends: tasks it still held keep their
            # lease until it expires, and recovery gives them to another worker.
            loop.call_later(GRACE_S + SHUTDOWN_S, _give_up)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping)
        await run_worker(settings, concurrency, stop)

    asyncio.run(run())
    return 0
