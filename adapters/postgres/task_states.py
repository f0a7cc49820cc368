"""The worker's state changes of a task (domain.ports.TaskStates), one round
trip each, or one for several tasks.

Each change is one call of a `keel_worker` function (migration 0005). The
call is a transaction of its own in which the function first becomes
keel_app in the task's tenant context (transaction-locally, as every unit of
work begins), then makes the guarded change (status and attempt) and writes
the attempt-history row. A unit of work needs five or six round trips for
the same (BEGIN, tenant switch, statements, COMMIT), plus building and
compiling its Core statements; the worker makes two such changes per task.

Claims, heartbeats and finishes made at the same moment
(adapters/machinery/coalescing.py) go as one call of `claim_tasks` /
`heartbeat_tasks` / `finish_tasks` (migrations 0007, 0008), which switch the
tenant context per task. A task that appears twice in a batch (a duplicate
delivery) goes alone after it, and when a batch fails with an error that is
not the database's availability, each of its changes is made again alone, so
that one task's error is only that task's (adapters/machinery/batch_or_each.py).

The calls go straight to the asyncpg connection of a pooled connection
(timed into the same query histogram and slow-query log as the engine's),
outside any SQLAlchemy transaction: each is an implicit transaction, which
has committed when the call returns, so events published after it describe
a stored state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from uuid6 import uuid7

from adapters.machinery.batch_or_each import BatchOrEach
from adapters.machinery.coalescing import Coalescer
from adapters.postgres.errors import translated
from adapters.postgres.observability import record
from adapters.postgres.tasks import task_from
from domain.entities import Claim, ClaimRefused, Lease, Task, TaskRef, TaskStatus
from domain.errors import UnavailableError, UnreadableValueError

# (task, max running, lease ms), (task, attempt, lease ms, progress) and
# (task, attempt, status, result, error, cached)
_ClaimItem = tuple[TaskRef, int, int]
_HeartbeatItem = tuple[TaskRef, int, int, int]
_FinishItem = tuple[TaskRef, int, str, str | None, str | None, bool]
Item = TypeVar("Item", bound=tuple[Any, ...])
Answer = TypeVar("Answer")

_CLAIM = "select * from keel_worker.claim_task($1, $2, $3, $4, $5, $6)"
_HEARTBEAT = "select keel_worker.heartbeat_task($1, $2, $3, $4, $5, $6)"
_FINISH = "select keel_worker.finish_task($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_RETRY = "select keel_worker.retry_task($1, $2, $3, $4, $5, $6, $7)"
_POSTPONE = "select keel_worker.postpone_task($1, $2, $3, $4)"
_REPLAY = "select * from keel_worker.replay_task($1, $2, $3, $4, $5)"
_CLAIMS = "select * from keel_worker.claim_tasks($1, $2, $3, $4, $5, $6)"
_FINISHES = "select keel_worker.finish_tasks($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_HEARTBEATS = "select * from keel_worker.heartbeat_tasks($1, $2, $3, $4, $5, $6)"

# The connection is gone (or the server is going away): drop it from the pool.
_LOST = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InternalClientError,  # its protocol state is lost (see liveness.py)
)
# Worth running again: the server is restarting, or the transaction lost a race.
_RETRYABLE = (asyncpg.OperatorInterventionError, asyncpg.TransactionRollbackError)


class PgTaskStates:
    def __init__(self, engine: AsyncEngine, slow_ms: float = 100.0) -> None:
        """`slow_ms`: calls that take longer are logged (as the engine's statements are)."""
        self._engine, self._slow_ms = engine, slow_ms
        incomplete = partial(UnavailableError, "the database call did not complete")
        self._claims: Coalescer[_ClaimItem, asyncpg.Record | None] = Coalescer(
            _batches(self._claim_batch, self._claim_one), incomplete
        )
        self._finishes: Coalescer[_FinishItem, bool] = Coalescer(
            _batches(self._finish_batch, self._finish_one), incomplete
        )
        self._heartbeats: Coalescer[_HeartbeatItem, Lease] = Coalescer(
            _batches(self._heartbeat_batch, self._heartbeat_one), incomplete
        )

    async def _call(self, query: str, *args: Any) -> list[asyncpg.Record]:
        with translated():  # the pool's own errors (no connection to be had)
            async with self._engine.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                started = time.perf_counter()
                try:
                    rows: list[asyncpg.Record] = await driver.fetch(query, *args)
                    record(query, time.perf_counter() - started, self._slow_ms)
                    return rows
                except _LOST as error:
                    await conn.invalidate(error)
                    raise UnavailableError("the database is unavailable") from error
                except _RETRYABLE as error:
                    if driver.is_closed():  # the server shut down
                        await conn.invalidate(error)
                    raise UnavailableError("the database asked to try again") from error

    async def _value(self, query: str, *args: Any) -> Any:
        return (await self._call(query, *args))[0][0]

    async def claim(self, ref: TaskRef, max_running: int, lease_s: float) -> Claim | ClaimRefused:
        row = await self._claims((ref, max_running, int(lease_s * 1000)))
        if row is None:
            return ClaimRefused.NOTHING  # cancelled, finished, or another worker's
        if row["status"] == TaskStatus.QUEUED.value:
            return ClaimRefused.BUSY  # still waiting: the workspace runs its maximum
        try:
            task = task_from(row)
        except UnreadableValueError as error:
            # Claimed all the same: the attempt fails at once and frees its slot.
            task = task_from({**row, "input": {}, "result": None})
            return Claim(task, task.attempts, unreadable=error.detail)
        return Claim(task, task.attempts)

    async def _claim_one(self, item: _ClaimItem) -> asyncpg.Record | None:
        ref, max_running, lease_ms = item
        rows = await self._call(_CLAIM, *_ref(ref), max_running, lease_ms, uuid7())
        return rows[0] if rows else None

    async def _claim_batch(self, items: list[_ClaimItem]) -> list[asyncpg.Record | None]:
        refs, columns = _columns(items)
        rows = await self._call(_CLAIMS, *_refs(refs), *columns, [uuid7() for _ in items])
        by_task = {row["id"]: row for row in rows}
        return [by_task.get(ref.task_id) for ref in refs]

    async def heartbeat(self, ref: TaskRef, attempt: int, lease_s: float, progress: int) -> Lease:
        return await self._heartbeats((ref, attempt, int(lease_s * 1000), progress))

    async def _heartbeat_one(self, item: _HeartbeatItem) -> Lease:
        ref, *change = item
        return _lease(await self._value(_HEARTBEAT, *_ref(ref), *change))

    async def _heartbeat_batch(self, items: list[_HeartbeatItem]) -> list[Lease]:
        refs, columns = _columns(items)
        rows = await self._call(_HEARTBEATS, *_refs(refs), *columns)
        asked = {row["task"]: row["asked"] for row in rows}
        return [_lease(asked.get(ref.task_id)) for ref in refs]

    async def finish(
        self,
        ref: TaskRef,
        attempt: int,
        status: TaskStatus,
        result: dict[str, object] | None = None,
        error: str | None = None,
        cached: bool = False,
    ) -> bool:
        stored = None if result is None else json.dumps(result)
        return await self._finishes((ref, attempt, status.value, stored, error, cached))

    async def _finish_one(self, item: _FinishItem) -> bool:
        ref, *change = item
        return bool(await self._value(_FINISH, *_ref(ref), *change, uuid7()))

    async def _finish_batch(self, items: list[_FinishItem]) -> list[bool]:
        refs, columns = _columns(items)
        rows = await self._call(_FINISHES, *_refs(refs), *columns, [uuid7() for _ in items])
        finished = {row[0] for row in rows}
        return [ref.task_id in finished for ref in refs]

    async def retry_later(self, ref: TaskRef, attempt: int, delay_ms: int, error: str) -> bool:
        return bool(await self._value(_RETRY, *_ref(ref), attempt, delay_ms, error, uuid7()))

    async def postpone(self, ref: TaskRef, delay_ms: int) -> None:
        await self._call(_POSTPONE, *_ref(ref), delay_ms)

    async def replay(self, ref: TaskRef, attempt: int) -> Task | None:
        rows = await self._call(_REPLAY, *_ref(ref), attempt, uuid7())
        return task_from(rows[0]) if rows else None


def _batches(
    batch: Callable[[list[Item]], Awaitable[list[Answer]]],
    one: Callable[[Item], Awaitable[Answer]],
) -> BatchOrEach[Item, Answer]:
    """A task's later changes go alone after the batch; a batch Postgres refuses
    (not one it could not answer: UnavailableError) goes change by change."""
    return BatchOrEach(batch, one, key=_task_id, falls_back=asyncpg.PostgresError)


def _task_id(item: tuple[Any, ...]) -> UUID:
    ref: TaskRef = item[0]
    return ref.task_id


def _lease(asked: bool | None) -> Lease:
    """A heartbeat function's answer: whether cancel was asked; NULL when not ours."""
    if asked is None:
        return Lease.LOST
    return Lease.CANCEL_ASKED if asked else Lease.HELD


def _ref(ref: TaskRef) -> tuple[Any, ...]:
    return ref.workspace_id, ref.task_id, ref.created_by


def _columns(items: list[Any]) -> tuple[list[TaskRef], list[list[Any]]]:
    """The tasks of (task, *change) items, and each change field as an array."""
    refs = [item[0] for item in items]
    return refs, [list(column) for column in zip(*(item[1:] for item in items), strict=True)]


def _refs(refs: list[TaskRef]) -> tuple[list[Any], ...]:
    return (
        [ref.workspace_id for ref in refs],
        [ref.task_id for ref in refs],
        [ref.created_by for ref in refs],
    )
