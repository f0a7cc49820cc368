"""Tasks over Core. The row is its own outbox: a queued, undispatched task is
the enqueue intent, and `pg_notify` (delivered on commit) wakes the relay.
Worker-side changes are guarded by (status, attempts) and each writes an
attempt-history row in the same transaction."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from uuid6 import uuid7

from adapters.postgres.repositories import Repository
from adapters.postgres.tables import task_attempts as attempts
from adapters.postgres.tables import tasks
from domain.entities import Claim, Task, TaskKind, TaskRef, TaskStatus

CHANNEL = "keel_tasks"
_NOTIFY = sa.text(f"select pg_notify('{CHANNEL}', '')")


def _task(row: Any) -> Task:
    return Task(
        workspace_id=row.workspace_id,
        id=row.id,
        kind=TaskKind(row.kind),
        status=TaskStatus(row.status),
        input=row.input,
        created_by=row.created_by,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        priority=row.priority,
        progress=row.progress,
        result=row.result,
        error=row.error,
        cached=row.cached,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _mine(ref: TaskRef) -> tuple[sa.ColumnElement[bool], ...]:
    """The task a queue entry names, only as its own creator: a forged entry naming
    another member of the workspace matches nothing."""
    return (
        tasks.c.workspace_id == ref.workspace_id,
        tasks.c.id == ref.task_id,
        tasks.c.created_by == ref.created_by,
    )


def _owned(ref: TaskRef, attempt: int) -> tuple[sa.ColumnElement[bool], ...]:
    return (*_mine(ref), tasks.c.status == TaskStatus.RUNNING.value, tasks.c.attempts == attempt)


def _later(delay_ms: int) -> sa.ColumnElement[Any]:
    return sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, delay_ms / 1000.0)


class PgTaskRepository(Repository):
    async def add(
        self, task: Task, idempotency_key: str | None, request_hash: str | None
    ) -> Task | None:
        statement = (
            insert(tasks)
            .values(
                workspace_id=task.workspace_id,
                id=task.id,
                kind=task.kind.value,
                status=TaskStatus.QUEUED.value,
                input=task.input,
                created_by=task.created_by,
                priority=task.priority,
                max_attempts=task.max_attempts,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
            )
            .on_conflict_do_nothing(
                index_elements=[tasks.c.workspace_id, tasks.c.idempotency_key],
                index_where=tasks.c.idempotency_key.is_not(None),
            )
            .returning(tasks)
        )
        row = (await self._execute(statement)).first()
        if row is None:
            return None
        await self._execute(_NOTIFY)
        return _task(row)

    async def find_by_key(self, workspace_id: UUID, key: str) -> tuple[Task, str | None] | None:
        row = (
            await self._execute(
                sa.select(tasks).where(
                    tasks.c.workspace_id == workspace_id, tasks.c.idempotency_key == key
                )
            )
        ).first()
        return (_task(row), row.request_hash) if row else None

    async def get(self, workspace_id: UUID, task_id: UUID) -> Task | None:
        row = (
            await self._execute(
                sa.select(tasks).where(tasks.c.workspace_id == workspace_id, tasks.c.id == task_id)
            )
        ).first()
        return _task(row) if row else None

    async def list(
        self,
        workspace_id: UUID,
        status: TaskStatus | None,
        kind: TaskKind | None,
        before: UUID | None,
        limit: int,
    ) -> list[Task]:
        query = (
            sa.select(tasks)
            .where(tasks.c.workspace_id == workspace_id)
            .order_by(tasks.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(tasks.c.status == status.value)
        if kind is not None:
            query = query.where(tasks.c.kind == kind.value)
        if before is not None:
            query = query.where(tasks.c.id < before)
        return [_task(row) for row in await self._execute(query)]

    async def cancel(self, workspace_id: UUID, task_id: UUID) -> Task | None:
        queued = tasks.c.status == TaskStatus.QUEUED.value
        statement = (
            sa.update(tasks)
            .where(tasks.c.workspace_id == workspace_id, tasks.c.id == task_id)
            .where(tasks.c.status.in_([TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]))
            .values(
                status=sa.case((queued, TaskStatus.CANCELLED.value), else_=tasks.c.status),
                finished_at=sa.case((queued, sa.func.now()), else_=tasks.c.finished_at),
                cancel_requested=True,
                updated_at=sa.func.now(),
            )
            .returning(tasks)
        )
        row = (await self._execute(statement)).first()
        return _task(row) if row else await self.get(workspace_id, task_id)

    async def claim(self, ref: TaskRef, max_running: int, lease_s: float) -> Claim | bool:
        # One claim at a time per workspace, so the cap holds under concurrency.
        await self._execute(
            sa.select(
                sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(str(ref.workspace_id), 1))
            )
        )
        running = (
            sa.select(sa.func.count())
            .where(
                tasks.c.workspace_id == ref.workspace_id,
                tasks.c.status == TaskStatus.RUNNING.value,
            )
            .scalar_subquery()
        )
        statement = (
            sa.update(tasks)
            .where(*_mine(ref), tasks.c.status == TaskStatus.QUEUED.value)
            .where(tasks.c.cancel_requested.is_(False), running < max_running)
            .values(
                status=TaskStatus.RUNNING.value,
                attempts=tasks.c.attempts + 1,
                started_at=sa.func.coalesce(tasks.c.started_at, sa.func.now()),
                lease_expires_at=_later(int(lease_s * 1000)),
                dispatched_at=None,
                updated_at=sa.func.now(),
            )
            .returning(tasks)
        )
        row = (await self._execute(statement)).first()
        if row is not None:
            await self._history(ref, row.attempts, "started")
            return Claim(_task(row), row.attempts)
        waiting = await self._execute(
            sa.select(tasks.c.id).where(
                *_mine(ref),
                tasks.c.status == TaskStatus.QUEUED.value,
                tasks.c.cancel_requested.is_(False),
            )
        )
        return waiting.first() is not None

    async def heartbeat(
        self, ref: TaskRef, attempt: int, lease_s: float, progress: int
    ) -> bool | None:
        statement = (
            sa.update(tasks)
            .where(*_owned(ref, attempt))
            .values(
                lease_expires_at=_later(int(lease_s * 1000)),
                progress=sa.func.greatest(tasks.c.progress, progress),
                updated_at=sa.func.now(),
            )
            .returning(tasks.c.cancel_requested)
        )
        flag = (await self._execute(statement)).first()
        return None if flag is None else bool(flag.cancel_requested)

    async def finish(
        self,
        ref: TaskRef,
        attempt: int,
        status: TaskStatus,
        result: dict[str, object] | None = None,
        error: str | None = None,
        cached: bool = False,
    ) -> bool:
        statement = (
            sa.update(tasks)
            .where(*_owned(ref, attempt))
            .values(
                status=status.value,
                result=result,
                error=error,
                cached=cached,
                progress=100 if status is TaskStatus.SUCCEEDED else tasks.c.progress,
                finished_at=sa.func.now(),
                lease_expires_at=None,
                updated_at=sa.func.now(),
            )
        )
        if (await self._execute(statement)).rowcount != 1:
            return False
        await self._history(ref, attempt, status.value, error=error)
        return True

    async def retry_later(self, ref: TaskRef, attempt: int, delay_ms: int, error: str) -> bool:
        statement = (
            sa.update(tasks)
            .where(*_owned(ref, attempt))
            .values(
                status=TaskStatus.QUEUED.value,
                error=error,
                available_at=_later(delay_ms),
                dispatched_at=None,
                lease_expires_at=None,
                updated_at=sa.func.now(),
            )
        )
        if (await self._execute(statement)).rowcount != 1:
            return False
        await self._history(ref, attempt, "retrying", delay_ms=delay_ms, error=error)
        await self._execute(_NOTIFY)
        return True

    async def postpone(self, ref: TaskRef, delay_ms: int) -> None:
        # The queue keeps the job (delayed); only the row's clock moves, so the
        # reconciler does not take a waiting task for a lost one.
        await self._execute(
            sa.update(tasks)
            .where(*_mine(ref), tasks.c.status == TaskStatus.QUEUED.value)
            .values(available_at=_later(delay_ms), dispatched_at=sa.func.now())
        )

    async def _history(
        self,
        ref: TaskRef,
        attempt: int,
        outcome: str,
        delay_ms: int | None = None,
        error: str | None = None,
    ) -> None:
        await self._execute(
            sa.insert(attempts).values(
                workspace_id=ref.workspace_id,
                id=uuid7(),
                task_id=ref.task_id,
                attempt=attempt,
                outcome=outcome,
                delay_ms=delay_ms,
                error=error,
            )
        )
