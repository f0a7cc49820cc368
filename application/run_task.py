"""The agent that runs one attempt of a task, in the task's own tenant context.

It claims the task (a guarded state change), loads its context (the cached
foundation bundle), streams the model's answer while a heartbeat keeps the
lease and notices cancellation, and records the outcome, guarded by the
attempt number so that a worker that lost its lease can never write a
second result. A foundation value or a task input Keel cannot carry fails
the task at once, with the reason (no retry would read anything else). Identical
requests (kind, input, foundation, model) are answered from the AI-result
cache without calling the model.

Each step is published as a task event after its state change committed,
in order; `task.started` goes out while the attempt goes on (its cache read
and model call do not wait for it), and the next event waits for it. Tokens
are sent in small batches (at most one event per TOKEN_BATCH_S), the
last batch together with the outcome (one round trip for both). An
event the bus cannot take is logged and skipped: the task itself goes on,
and a stream that misses a terminal event ends from the database's state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from application.events.announcer import Announcer
from application.foundation import GetFoundationBundle
from application.retrying import retried
from domain.attempts import Outcome, Ran
from domain.cache import CacheKey
from domain.entities import (
    Claim,
    ClaimRefused,
    FoundationBundle,
    Lease,
    TaskKind,
    TaskRef,
    TaskStatus,
)
from domain.errors import (
    ModelError,
    NotFoundError,
    TaskCancelledError,
    TransientModelError,
    UnreadableValueError,
)
from domain.events import EventType, TaskEvent
from domain.ports import (
    Cache,
    Clock,
    EventPublisher,
    LanguageModel,
    TaskStates,
    UnitOfWorkFactory,
)
from domain.retry import Backoff

logger = logging.getLogger("keel.tasks")
AI_RESULTS = "ai-results"
AI_RESULT_TTL_S = 24 * 3600.0
CHECK_IN_S = 0.5
TOKEN_BATCH_S = 0.05


_ENDINGS = {
    Outcome.SUCCEEDED: (TaskStatus.SUCCEEDED, EventType.SUCCEEDED),
    Outcome.FAILED: (TaskStatus.FAILED, EventType.FAILED),
    Outcome.CANCELLED: (TaskStatus.CANCELLED, EventType.CANCELLED),
}


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    max_running_per_workspace: int = 4
    lease_s: float = 30.0
    postpone_ms: int = 250
    backoff: Backoff = field(default_factory=Backoff)


class _LeaseLostError(Exception):
    pass


class RunTask:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        states: TaskStates,
        cache: Cache,
        model: LanguageModel,
        events: EventPublisher,
        settings: RunnerSettings,
        clock: Clock,
    ) -> None:
        self._uows, self._cache, self._model, self._settings = uow_factory, cache, model, settings
        self._states = states
        self._events = events
        self._clock = clock

    async def execute(self, ref: TaskRef) -> Ran:
        """One attempt at `ref`; a Postgres or Redis failure propagates (it is dispatched again)."""
        settings = self._settings
        states = self._states
        claim = await retried(
            lambda: states.claim(ref, settings.max_running_per_workspace, settings.lease_s),
            clock=self._clock,
        )
        if claim is ClaimRefused.BUSY:
            await retried(lambda: states.postpone(ref, settings.postpone_ms), clock=self._clock)
            return Ran(Outcome.POSTPONED, delay_ms=settings.postpone_ms)
        if claim is ClaimRefused.NOTHING:
            return Ran(Outcome.SKIPPED)
        events = Announcer(self._events, ref)
        events.start(EventType.STARTED, attempt=claim.attempt)
        try:
            ran = await self._run(ref, claim, events)
        finally:
            await events.settle()
        return dataclasses.replace(ran, replayed_from=claim.replayed_from)

    async def _run(self, ref: TaskRef, claim: Claim, events: Announcer) -> Ran:
        if claim.unreadable is not None:
            return await self._end(ref, claim, events, Outcome.FAILED, error=claim.unreadable)
        try:
            result, cached, tail = await self._attempt(ref, claim, events)
        except _LeaseLostError:
            return Ran(Outcome.SKIPPED, claim.attempt)
        except TaskCancelledError:
            return await self._end(ref, claim, events, Outcome.CANCELLED)
        except TransientModelError as error:
            if claim.task.may_retry(claim.attempt):
                delay = self._settings.backoff.delay_ms(claim.attempt, error.retry_after_s)
                detail = error.detail
                ours = await retried(
                    lambda: self._states.retry_later(ref, claim.attempt, delay, detail),
                    clock=self._clock,
                )
                if not ours:
                    return Ran(Outcome.SKIPPED, claim.attempt)
                logger.info(
                    "task.retrying %s attempt=%s delay_ms=%s", ref.task_id, claim.attempt, delay
                )
                await events.emit(
                    EventType.RETRYING,
                    attempt=claim.attempt,
                    delay_s=delay / 1000,
                    error=detail,
                )
                return Ran(Outcome.RETRYING, claim.attempt, detail)
            return await self._end(ref, claim, events, Outcome.FAILED, error=error.detail)
        except (ModelError, NotFoundError, UnreadableValueError) as error:
            # For good: another attempt would read the same stored value.
            return await self._end(ref, claim, events, Outcome.FAILED, error=error.detail)
        return await self._end(
            ref, claim, events, Outcome.SUCCEEDED, tail, result=result, cached=cached
        )

    async def _end(
        self,
        ref: TaskRef,
        claim: Claim,
        events: Announcer,
        outcome: Outcome,
        tail: str = "",
        **fields: Any,
    ) -> Ran:
        """Record the final state and publish it (after `tail`, the tokens not sent
        yet), if this attempt still owns the task: a worker that lost its lease
        must not announce an ending that is not stored."""
        status, event = _ENDINGS[outcome]
        # Retried while the database is unreachable: each change is guarded,
        # so a retry after a commit whose answer was lost changes nothing.
        ours = await retried(
            lambda: self._states.finish(ref, claim.attempt, status, **fields), clock=self._clock
        )
        if not ours:
            return Ran(Outcome.SKIPPED, claim.attempt)
        ending = TaskEvent(ref.workspace_id, ref.task_id, event, fields)
        if tail:
            tokens = TaskEvent(ref.workspace_id, ref.task_id, EventType.TOKEN, {"text": tail})
            await events.publish(tokens, ending)
        else:
            await events.publish(ending)
        return Ran(outcome, claim.attempt, fields.get("error"))

    async def _attempt(
        self, ref: TaskRef, claim: Claim, events: Announcer
    ) -> tuple[dict[str, Any], bool, str]:
        """The result, whether it came from the cache, and the tokens not sent yet."""
        task = claim.task
        system, prompt = await self._messages(ref, task.kind, task.input)
        fingerprint = hashlib.sha256(
            json.dumps(
                [task.kind.value, task.input, system, self._model.name], sort_keys=True
            ).encode()
        ).hexdigest()
        called, tail = False, ""

        async def call_model() -> dict[str, Any]:
            nonlocal called, tail
            called = True
            text, tail = await self._stream(ref, claim, events, system, prompt)
            return {"summary": text} if task.kind is TaskKind.SUMMARIZE else {"text": text}

        result = await self._cache.get_or_set(
            CacheKey(ref.workspace_id, AI_RESULTS, fingerprint[:64]),
            call_model,
            type_=dict,
            ttl_s=AI_RESULT_TTL_S,
        )
        assert result is not None
        return result, not called, tail

    async def _messages(
        self, ref: TaskRef, kind: TaskKind, data: dict[str, Any]
    ) -> tuple[str, str]:
        if kind is TaskKind.SUMMARIZE:
            return "Summarize the user's text in a few sentences.", str(data["text"])
        system = "You write for this workspace."
        if data.get("use_foundation", True):
            bundle = await GetFoundationBundle(self._uows(ref.caller), self._cache).execute()
            system += "\n\n" + _context(bundle)
        return system, str(data["prompt"])

    async def _stream(
        self, ref: TaskRef, claim: Claim, events: Announcer, system: str, prompt: str
    ) -> tuple[str, str]:
        """The whole answer, and its tokens not sent yet (they go with the outcome)."""
        tokens: list[str] = []
        state = {"cancel": False, "lost": False}

        async def keep_lease() -> None:
            while True:
                await asyncio.sleep(self._settings.lease_s / 3)
                found = await self._states.heartbeat(
                    ref, claim.attempt, self._settings.lease_s, _progress(len(tokens))
                )
                state["lost"] = found is Lease.LOST
                state["cancel"] = found is Lease.CANCEL_ASKED

        lease = asyncio.create_task(keep_lease())
        last_check_in = last_batch = self._clock.monotonic()
        sent = 0
        try:
            async for token in self._model.stream(system, prompt):
                tokens.append(token)
                now = self._clock.monotonic()
                if now - last_batch >= TOKEN_BATCH_S:
                    await events.emit(EventType.TOKEN, text="".join(tokens[sent:]))
                    sent, last_batch = len(tokens), now
                # A step: record progress and notice a cancel, at most every
                # CHECK_IN_S (a fast task pays no extra transaction).
                if now - last_check_in >= CHECK_IN_S:
                    await self._check_in(ref, claim, state, len(tokens))
                    await events.emit(
                        EventType.PROGRESS, progress=_progress(len(tokens)), message="writing"
                    )
                    last_check_in = self._clock.monotonic()
        finally:
            lease.cancel()
        return "".join(tokens), "".join(tokens[sent:])

    async def _check_in(self, ref: TaskRef, claim: Claim, state: dict[str, bool], n: int) -> None:
        """Record progress at a step; stop if cancelled or no longer ours."""
        lease = await self._states.heartbeat(
            ref, claim.attempt, self._settings.lease_s, _progress(n)
        )
        if lease is Lease.LOST or state["lost"]:
            raise _LeaseLostError
        if lease is Lease.CANCEL_ASKED or state["cancel"]:
            raise TaskCancelledError("cancelled while running")


def _progress(tokens: int) -> int:
    """An estimate that approaches but never reaches 100 before the end."""
    return min(99, int(100 * tokens / (tokens + 50)))


def _context(bundle: FoundationBundle) -> str:
    return "\n".join(
        f"## {document.kind}: {document.title}\n{json.dumps(document.content, sort_keys=True)}"
        for document in bundle.documents
    )
