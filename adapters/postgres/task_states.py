"""The worker's state changes of a task (domain.ports.TaskStates), one round
trip each.

Each change is one call of a `keel_worker` function (migration 0005). The
call is a transaction of its own in which the function first becomes
keel_app in the task's tenant context (transaction-locally, as every unit of
work begins), then makes the guarded change (status and attempt) and writes
the attempt-history row. A unit of work needs five or six round trips for
the same (BEGIN, tenant switch, statements, COMMIT), plus building and
compiling its Core statements; the worker makes two such changes per task.

The calls go straight to the asyncpg connection of a pooled connection
(timed into the same query histogram and slow-query log as the engine's),
outside any SQLAlchemy transaction: each is an implicit transaction, which
has committed when the call returns, so events published after it describe
a stored state.
"""

from __future__ import annotations

import json
import time
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from uuid6 import uuid7

from adapters.postgres.errors import translated
from adapters.postgres.observability import record
from adapters.postgres.tasks import task_from
from domain.entities import Claim, TaskRef, TaskStatus
from domain.errors import UnavailableError

_CLAIM = "select * from keel_worker.claim_task($1, $2, $3, $4, $5, $6)"
_HEARTBEAT = "select keel_worker.heartbeat_task($1, $2, $3, $4, $5, $6)"
_FINISH = "select keel_worker.finish_task($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_RETRY = "select keel_worker.retry_task($1, $2, $3, $4, $5, $6, $7)"
_POSTPONE = "select keel_worker.postpone_task($1, $2, $3, $4)"

# The connection is gone (or the server is going away): drop it from the pool.
_LOST = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)
# Worth running again: the server is restarting, or the transaction lost a race.
_RETRYABLE = (asyncpg.OperatorInterventionError, asyncpg.TransactionRollbackError)


class PgTaskStates:
    def __init__(self, engine: AsyncEngine, slow_ms: float = 100.0) -> None:
        """`slow_ms`: calls that take longer are logged (as the engine's statements are)."""
        self._engine, self._slow_ms = engine, slow_ms

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

    async def claim(self, ref: TaskRef, max_running: int, lease_s: float) -> Claim | bool:
        rows = await self._call(_CLAIM, *_ref(ref), max_running, int(lease_s * 1000), uuid7())
        if not rows:
            return False  # nothing to run: cancelled, finished, or another worker's
        task = task_from(rows[0])
        if task.status is TaskStatus.QUEUED:
            return True  # still waiting: the workspace runs its maximum
        return Claim(task, task.attempts)

    async def heartbeat(
        self, ref: TaskRef, attempt: int, lease_s: float, progress: int
    ) -> bool | None:
        asked = await self._value(_HEARTBEAT, *_ref(ref), attempt, int(lease_s * 1000), progress)
        return None if asked is None else bool(asked)

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
        return bool(
            await self._value(
                _FINISH, *_ref(ref), attempt, status.value, stored, error, cached, uuid7()
            )
        )

    async def retry_later(self, ref: TaskRef, attempt: int, delay_ms: int, error: str) -> bool:
        return bool(await self._value(_RETRY, *_ref(ref), attempt, delay_ms, error, uuid7()))

    async def postpone(self, ref: TaskRef, delay_ms: int) -> None:
        await self._call(_POSTPONE, *_ref(ref), delay_ms)


def _ref(ref: TaskRef) -> tuple[Any, ...]:
    return ref.workspace_id, ref.task_id, ref.created_by
