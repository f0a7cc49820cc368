"""Tasks over Core. The row is its own outbox: a queued, undispatched task is
the enqueue intent, and a NOTIFY (delivered on commit) wakes the relay: a plain
statement, as the runtime roles may not execute `pg_notify` (migration 0010).
The worker's state changes are in adapters.postgres.task_states."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from uuid6 import uuid7

from adapters.postgres.repositories import Repository
from adapters.postgres.stored_json import readable
from adapters.postgres.tables import task_attempts, tasks
from adapters.tracing import current_traceparent
from domain.entities import AttemptRecord, Task, TaskKind, TaskStatus

CHANNEL = "keel_tasks"
_NOTIFY = sa.text(f"notify {CHANNEL}")


def task_from(row: Mapping[Any, Any]) -> Task:
    """A task from a row's columns (a Core row's `_mapping`, an asyncpg record).

    Raises UnreadableValueError, naming the task, for JSON that cannot be read.
    """
    return Task(
        workspace_id=row["workspace_id"],
        id=row["id"],
        kind=TaskKind(row["kind"]),
        status=TaskStatus(row["status"]),
        input=readable(row["input"], f"the input of task {row['id']}"),
        created_by=row["created_by"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        budget_from=row["budget_from"],
        priority=row["priority"],
        progress=row["progress"],
        result=readable(row["result"], f"the result of task {row['id']}"),
        error=row["error"],
        cached=row["cached"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


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
                trace_context=current_traceparent(),
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
        return task_from(row._mapping)

    async def find_by_key(self, workspace_id: UUID, key: str) -> tuple[Task, str | None] | None:
        row = (
            await self._execute(
                sa.select(tasks).where(
                    tasks.c.workspace_id == workspace_id, tasks.c.idempotency_key == key
                )
            )
        ).first()
        return (task_from(row._mapping), row.request_hash) if row else None

    async def get(self, workspace_id: UUID, task_id: UUID) -> Task | None:
        row = (
            await self._execute(
                sa.select(tasks).where(tasks.c.workspace_id == workspace_id, tasks.c.id == task_id)
            )
        ).first()
        return task_from(row._mapping) if row else None

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
        return [task_from(row._mapping) for row in await self._execute(query)]

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
        return task_from(row._mapping) if row else await self.get(workspace_id, task_id)

    async def replay(self, workspace_id: UUID, task_id: UUID) -> Task | None:
        # The same change as keel_worker.replay_task (migration 0011).
        statement = (
            sa.update(tasks)
            .where(tasks.c.workspace_id == workspace_id, tasks.c.id == task_id)
            .where(tasks.c.status == TaskStatus.FAILED.value)
            .values(
                status=TaskStatus.QUEUED.value,
                budget_from=tasks.c.attempts,
                result=None,
                error=None,
                progress=0,
                cached=False,
                cancel_requested=False,
                finished_at=None,
                lease_expires_at=None,
                dispatched_at=None,
                available_at=sa.func.now(),
                updated_at=sa.func.now(),
            )
            .returning(tasks)
        )
        row = (await self._execute(statement)).first()
        if row is None:
            return None
        task = task_from(row._mapping)
        await self._execute(
            sa.insert(task_attempts).values(
                workspace_id=workspace_id,
                id=uuid7(),
                task_id=task_id,
                attempt=task.attempts,
                outcome="replayed",
            )
        )
        await self._execute(_NOTIFY)
        return task

    async def history(self, workspace_id: UUID, task_id: UUID) -> builtins.list[AttemptRecord]:
        query = (
            sa.select(task_attempts)
            .where(task_attempts.c.workspace_id == workspace_id)
            .where(task_attempts.c.task_id == task_id)
            .order_by(task_attempts.c.at, task_attempts.c.id)
        )
        return [
            AttemptRecord(row.attempt, row.outcome, row.error, row.delay_ms, row.at)
            for row in await self._execute(query)
        ]
