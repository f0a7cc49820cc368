"""The queue's consumer (adapters/redis/consumer.py) without Redis: a job's
data read back as what the queue wrote, and each attempt's outcome turned
into what BullMQ must do with the job."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
import pytest
from bullmq import DelayedError, UnrecoverableError

from adapters.redis.consumer import BullMQTaskConsumer, ConsumerSettings
from adapters.redis.queue import TaskJob, _job
from domain.attempts import Outcome, Ran
from domain.entities import Dispatch, TaskKind, TaskRef

REF = TaskRef(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())


class FakeJob:
    def __init__(self, data: dict[str, Any], attempts_made: int = 0) -> None:
        self.id, self.data, self.attemptsMade = f"{REF.task_id}.2", data, attempts_made
        self.delayed_until: list[tuple[int, str]] = []

    async def moveToDelayed(self, timestamp: int, token: str) -> None:  # noqa: N802 - bullmq's
        self.delayed_until.append((timestamp, token))


class Runs:
    def __init__(self, ran: Ran | Exception) -> None:
        self.ran, self.refs = ran, list[TaskRef]()

    async def execute(self, ref: TaskRef) -> Ran:
        self.refs.append(ref)
        if isinstance(self.ran, Exception):
            raise self.ran
        return self.ran


class Replays:
    def __init__(self) -> None:
        self.asked: list[tuple[TaskRef, int]] = []

    async def execute(self, ref: TaskRef, attempt: int) -> bool:
        self.asked.append((ref, attempt))
        return True


class Queue:
    def __init__(self) -> None:
        self.forgotten: list[tuple[TaskRef, int]] = []

    async def forget_dead_letter(self, ref: TaskRef, attempt: int) -> None:
        self.forgotten.append((ref, attempt))


def _consumer(run: Runs, replay: Replays | None = None, queue: Queue | None = None) -> Any:
    settings = ConsumerSettings(redis_url="redis://unused", prefix="{test}", lease_s=5)
    return BullMQTaskConsumer(run, replay or Replays(), queue or Queue(), settings)  # type: ignore[arg-type]


def _data(**extra: Any) -> dict[str, Any]:
    dispatch = Dispatch(REF, attempt=2, priority=0, delay_ms=0, kind=TaskKind.SUMMARIZE, **extra)
    data: dict[str, Any] = _job(dispatch)["data"]
    return data


def test_a_job_carries_the_tasks_reference_and_its_attempt() -> None:
    assert _data() == {
        "workspace_id": str(REF.workspace_id),
        "task_id": str(REF.task_id),
        "created_by": str(REF.created_by),
        "attempt": 2,
    }
    traced = _data(trace_context="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert traced["traceparent"].startswith("00-1111")
    assert TaskJob.decode(traced).ref == REF
    assert TaskJob.decode({**_data(), "added_by": "a dashboard"}).attempt == 2


def test_data_that_is_no_tasks_job_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        TaskJob.decode({"task_id": "not a uuid"})


@pytest.mark.parametrize(
    "outcome", [Outcome.SUCCEEDED, Outcome.CANCELLED, Outcome.RETRYING, Outcome.SKIPPED]
)
async def test_an_attempt_that_ended_completes_its_job(outcome: Outcome) -> None:
    run = Runs(Ran(outcome, attempt=2))
    assert await _consumer(run)._process(FakeJob(_data()), "token") == outcome.value
    assert run.refs == [REF]


async def test_a_failure_for_good_fails_the_job_with_the_tasks_error() -> None:
    run = Runs(Ran(Outcome.FAILED, attempt=2, error="the model refused"))
    with pytest.raises(UnrecoverableError, match=r"^the model refused \(attempt 2\)$"):
        await _consumer(run)._process(FakeJob(_data()), "token")


async def test_a_postponed_attempt_delays_the_same_job_for_its_delay() -> None:
    job, before = FakeJob(_data()), int(time.time() * 1000)
    with pytest.raises(DelayedError):
        await _consumer(Runs(Ran(Outcome.POSTPONED, delay_ms=60_000)))._process(job, "token")
    ((until, token),) = job.delayed_until
    assert token == "token"
    assert before + 60_000 <= until <= int(time.time() * 1000) + 60_000


async def test_an_interrupted_attempt_completes_its_job_to_be_dispatched_again() -> None:
    run = Runs(ConnectionError("Postgres went away"))
    assert await _consumer(run)._process(FakeJob(_data()), "token") == "interrupted"


async def test_a_job_delivered_again_replays_its_task() -> None:
    run, replay = Runs(AssertionError("not run")), Replays()
    answer = await _consumer(run, replay)._process(FakeJob(_data(), attempts_made=1), "token")
    assert (answer, replay.asked, run.refs) == ("replayed", [(REF, 2)], [])


async def test_the_first_attempt_after_a_replay_forgets_the_dead_letter() -> None:
    queue = Queue()
    run = Runs(Ran(Outcome.SUCCEEDED, attempt=4, replayed_from=3))
    await _consumer(run, queue=queue)._process(FakeJob(_data()), "token")
    assert queue.forgotten == [(REF, 3)]
