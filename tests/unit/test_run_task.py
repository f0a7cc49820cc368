"""RunTask on in-memory fakes of its ports: each outcome an attempt can come
to (domain/attempts.py), what it records, and what it announces."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from application import run_task
from application.run_task import RunnerSettings, RunTask
from domain.attempts import Outcome, Ran
from domain.entities import Caller, Claim, ClaimRefused, Lease, Task, TaskKind, TaskRef, TaskStatus
from domain.errors import ModelError, TransientModelError
from domain.events import EventType, TaskEvent
from tests.fakes import FakeClock, InMemoryCache, ScriptedModel

REF = TaskRef(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
SETTINGS = RunnerSettings(max_running_per_workspace=2, lease_s=9, postpone_ms=321)


def _claim(attempt: int = 1, max_attempts: int = 3, **changes: Any) -> Claim:
    task = Task(
        workspace_id=REF.workspace_id,
        id=REF.task_id,
        kind=TaskKind.SUMMARIZE,
        status=TaskStatus.RUNNING,
        input={"text": "Keel runs tasks."},
        created_by=REF.created_by,
        attempts=attempt,
        max_attempts=max_attempts,
        budget_from=changes.pop("budget_from", 0),
    )
    return Claim(task, attempt, **changes)


class ScriptedStates:
    """TaskStates that answer as told and record every change asked of them."""

    def __init__(
        self, claim: Claim | ClaimRefused, *, owned: bool = True, cancel: bool = False
    ) -> None:
        self.answer, self.owned, self.cancel = claim, owned, cancel
        self.changes: list[tuple[Any, ...]] = []

    async def claim(self, ref: TaskRef, max_running: int, lease_s: float) -> Claim | ClaimRefused:
        self.changes.append(("claim", ref, max_running, lease_s))
        return self.answer

    async def heartbeat(self, ref: TaskRef, attempt: int, lease_s: float, progress: int) -> Lease:
        self.changes.append(("heartbeat", attempt))
        if not self.owned:
            return Lease.LOST
        return Lease.CANCEL_ASKED if self.cancel else Lease.HELD

    async def finish(
        self,
        ref: TaskRef,
        attempt: int,
        status: TaskStatus,
        result: dict[str, object] | None = None,
        error: str | None = None,
        cached: bool = False,
    ) -> bool:
        self.changes.append(("finish", attempt, status, result, error, cached))
        return self.owned

    async def retry_later(self, ref: TaskRef, attempt: int, delay_ms: int, error: str) -> bool:
        self.changes.append(("retry_later", attempt, delay_ms, error))
        return self.owned

    async def postpone(self, ref: TaskRef, delay_ms: int) -> None:
        self.changes.append(("postpone", ref, delay_ms))

    async def replay(self, ref: TaskRef, attempt: int) -> Task | None:
        raise AssertionError("a worker's attempt never replays")

    def asked(self, change: str) -> list[tuple[Any, ...]]:
        return [made for made in self.changes if made[0] == change]


class Published:
    def __init__(self) -> None:
        self.events: list[TaskEvent] = []

    async def publish(self, *events: TaskEvent) -> None:
        self.events.extend(events)

    @property
    def types(self) -> list[EventType]:
        return [event.type for event in self.events if event.type is not EventType.TOKEN]


def _no_units_of_work(caller: Caller) -> Any:
    raise AssertionError("a summary reads no foundation")


def _runner(
    states: ScriptedStates,
    model: ScriptedModel,
    events: Published | None = None,
    cache: InMemoryCache | None = None,
    settings: RunnerSettings = SETTINGS,
    clock: FakeClock | None = None,
) -> RunTask:
    return RunTask(
        _no_units_of_work,  # type: ignore[arg-type]
        states,
        cache or InMemoryCache(),
        model,
        events or Published(),
        settings,
        clock or FakeClock(),
    )


class SlowModel(ScriptedModel):
    """Streams its tokens `gap_s` apart on `clock`."""

    def __init__(self, clock: FakeClock, gap_s: float, *tokens: str) -> None:
        super().__init__(*tokens)
        self.clock, self.gap_s = clock, gap_s

    async def stream(self, system: str, prompt: str) -> AsyncIterator[str]:
        async for token in super().stream(system, prompt):
            self.clock.advance(self.gap_s)
            yield token


async def test_a_model_that_streams_slowly_checks_in_and_reports_progress_at_each_step() -> None:
    clock, states, events = FakeClock(), ScriptedStates(_claim()), Published()
    model = SlowModel(clock, run_task.CHECK_IN_S, "a", "b", "c")
    ran = await _runner(states, model, events, clock=clock).execute(REF)
    assert ran == Ran(Outcome.SUCCEEDED, attempt=1)
    assert states.asked("heartbeat") == [("heartbeat", 1)] * 3
    assert events.types == [EventType.STARTED, *[EventType.PROGRESS] * 3, EventType.SUCCEEDED]
    tokens = [e.data["text"] for e in events.events if e.type is EventType.TOKEN]
    assert tokens == ["a", "b", "c"]


async def test_a_fast_model_pays_no_check_in() -> None:
    states, events = ScriptedStates(_claim()), Published()
    await _runner(states, ScriptedModel("a", "b", "c"), events).execute(REF)
    assert states.asked("heartbeat") == []
    assert [e.data["text"] for e in events.events if e.type is EventType.TOKEN] == ["abc"]


async def test_a_task_that_ran_succeeds_with_the_answer_and_announces_it() -> None:
    states, events = ScriptedStates(_claim()), Published()
    ran = await _runner(states, ScriptedModel("Keel ", "runs."), events).execute(REF)
    assert ran == Ran(Outcome.SUCCEEDED, attempt=1)
    assert states.asked("claim") == [("claim", REF, 2, 9)]
    result = {"summary": "Keel runs."}
    assert states.asked("finish") == [("finish", 1, TaskStatus.SUCCEEDED, result, None, False)]
    assert events.types == [EventType.STARTED, EventType.SUCCEEDED]
    assert "".join(e.data["text"] for e in events.events if e.type is EventType.TOKEN) == (
        "Keel runs."
    )


async def test_the_same_request_again_is_answered_from_the_cache() -> None:
    cache, model = InMemoryCache(), ScriptedModel("once")
    await _runner(ScriptedStates(_claim()), model, cache=cache).execute(REF)
    states = ScriptedStates(_claim())
    assert (await _runner(states, model, cache=cache).execute(REF)).outcome is Outcome.SUCCEEDED
    assert len(model.prompts) == 1
    assert states.asked("finish")[0][-1] is True  # cached


async def test_a_busy_workspace_postpones_the_task_for_the_settings_delay() -> None:
    states = ScriptedStates(ClaimRefused.BUSY)
    ran = await _runner(states, ScriptedModel()).execute(REF)
    assert ran == Ran(Outcome.POSTPONED, delay_ms=321)
    assert states.asked("postpone") == [("postpone", REF, 321)]
    assert states.asked("finish") == []


async def test_nothing_to_run_is_skipped() -> None:
    states, events = ScriptedStates(ClaimRefused.NOTHING), Published()
    assert await _runner(states, ScriptedModel(), events).execute(REF) == Ran(Outcome.SKIPPED)
    assert events.events == []


async def test_an_attempt_that_lost_the_task_is_skipped_and_announces_no_ending() -> None:
    states, events = ScriptedStates(_claim(), owned=False), Published()
    ran = await _runner(states, ScriptedModel("late"), events).execute(REF)
    assert ran == Ran(Outcome.SKIPPED, attempt=1)
    assert events.types == [EventType.STARTED]


async def test_a_transient_failure_with_attempts_left_retries_later() -> None:
    states, events = ScriptedStates(_claim(attempt=1)), Published()
    busy = TransientModelError("the model is busy", retry_after_s=2)
    ran = await _runner(states, ScriptedModel(error=busy), events).execute(REF)
    assert ran == Ran(Outcome.RETRYING, attempt=1, error="the model is busy")
    assert states.asked("retry_later") == [("retry_later", 1, 2000, "the model is busy")]
    assert states.asked("finish") == []
    assert events.types == [EventType.STARTED, EventType.RETRYING]


async def test_a_retry_another_worker_took_over_is_skipped() -> None:
    states = ScriptedStates(_claim(), owned=False)
    ran = await _runner(states, ScriptedModel(error=TransientModelError("busy"))).execute(REF)
    assert ran == Ran(Outcome.SKIPPED, attempt=1)


@pytest.mark.parametrize(
    ("claim", "error", "reason"),
    [
        (_claim(attempt=3, max_attempts=3), TransientModelError("still busy"), "still busy"),
        (_claim(), ModelError("refused for good"), "refused for good"),
        (_claim(unreadable="input.text is not Keel's JSON"), None, "input.text is not Keel's JSON"),
    ],
    ids=["attempts-used-up", "model-refused", "unreadable-input"],
)
async def test_a_failure_for_good_fails_the_task_with_its_reason(
    claim: Claim, error: Exception | None, reason: str
) -> None:
    states, events = ScriptedStates(claim), Published()
    ran = await _runner(states, ScriptedModel(error=error), events).execute(REF)
    assert ran == Ran(Outcome.FAILED, attempt=claim.attempt, error=reason)
    assert states.asked("finish") == [
        ("finish", claim.attempt, TaskStatus.FAILED, None, reason, False)
    ]
    assert events.types == [EventType.STARTED, EventType.FAILED]
    assert events.events[-1].data == {"error": reason}


async def test_a_cancel_asked_while_it_runs_cancels_the_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_task, "CHECK_IN_S", 0)  # a check-in at every token
    states, events = ScriptedStates(_claim(), cancel=True), Published()
    ran = await _runner(states, ScriptedModel("a", "b", "c"), events).execute(REF)
    assert ran == Ran(Outcome.CANCELLED, attempt=1)
    assert states.asked("heartbeat")
    assert states.asked("finish") == [("finish", 1, TaskStatus.CANCELLED, None, None, False)]
    assert events.types[0] is EventType.STARTED
    assert events.types[-1] is EventType.CANCELLED


async def test_the_first_attempt_after_a_replay_names_the_attempt_it_replayed() -> None:
    states = ScriptedStates(_claim(attempt=4, budget_from=3))
    ran = await _runner(states, ScriptedModel("again")).execute(REF)
    assert ran == Ran(Outcome.SUCCEEDED, attempt=4, replayed_from=3)
