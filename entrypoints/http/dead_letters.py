"""Dead letters over HTTP: a workspace's failed tasks, for its owners
(application/dead_letters/). A dead letter is its task; showing one adds
its attempt history; replaying answers 202 with the task queued again."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, get, post
from litestar.params import FromPath

from application.dead_letters import GetDeadLetter, ListDeadLetters, ReplayDeadLetter
from application.pagination import DEFAULT_LIMIT
from entrypoints.http.controllers import Cursor, Limit
from entrypoints.http.openapi import problems
from entrypoints.http.schemas import TaskOut, TaskPage


class AttemptOut(msgspec.Struct, frozen=True):
    attempt: int
    outcome: str
    error: str | None
    delay_ms: int | None
    at: datetime


class DeadLetterOut(msgspec.Struct, frozen=True):
    task: TaskOut
    history: list[AttemptOut]


class DeadLetterController(Controller):
    path = "/v1/workspaces/{workspace_id:uuid}/dead-letters"
    tags = ["dead-letters"]

    @get(responses=problems(404))
    async def list_dead_letters(
        self,
        workspace_id: FromPath[UUID],
        use_case: FromDishka[ListDeadLetters],
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> TaskPage:
        page = await use_case.execute(limit, cursor)
        return TaskPage([TaskOut.of(task) for task in page.items], page.next_cursor)

    @get("/{task_id:uuid}", responses=problems(404))
    async def show(
        self,
        workspace_id: FromPath[UUID],
        task_id: FromPath[UUID],
        use_case: FromDishka[GetDeadLetter],
    ) -> DeadLetterOut:
        found = await use_case.execute(task_id)
        history = [
            AttemptOut(row.attempt, row.outcome, row.error, row.delay_ms, row.at)
            for row in found.history
        ]
        return DeadLetterOut(TaskOut.of(found.task), history)

    @post("/{task_id:uuid}/replay", status_code=202, responses=problems(404))
    async def replay(
        self,
        workspace_id: FromPath[UUID],
        task_id: FromPath[UUID],
        use_case: FromDishka[ReplayDeadLetter],
    ) -> TaskOut:
        return TaskOut.of(await use_case.execute(task_id))
