"""AI tasks over HTTP (API.md): 202 on creation, Idempotency-Key honoured."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from dishka.integrations.litestar import FromDishka
from litestar import Controller, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from application.pagination import DEFAULT_LIMIT
from application.tasks import CancelTask, CreateTask, GetTask, ListTasks
from domain.entities import Caller, TaskKind, TaskStatus
from domain.ports import RateLimit
from entrypoints.http.controllers import Cursor, Limit
from entrypoints.http.openapi import problems
from entrypoints.http.rate_limit import count_task
from entrypoints.http.schemas import TaskIn, TaskOut, TaskPage

IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key")]


class TaskController(Controller):
    path = "/v1/workspaces/{workspace_id:uuid}/tasks"
    tags = ["tasks"]

    @post(
        status_code=202,
        responses={
            200: ResponseSpec(
                TaskOut, description="The task an earlier request with this Idempotency-Key made"
            ),
            **problems(404, 409, 413, 415, 429),
        },
    )
    async def create(
        self,
        workspace_id: FromPath[UUID],
        data: JSONBody[TaskIn],
        use_case: FromDishka[CreateTask],
        limit: FromDishka[RateLimit],
        caller: FromDishka[Caller],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[TaskOut]:
        quota = await count_task(limit, caller.user_id)
        accepted = await use_case.execute(
            data.kind, data.input, data.priority, data.max_attempts, idempotency_key
        )
        status = 202 if accepted.created else 200
        return Response(TaskOut.of(accepted.task), status_code=status, headers=quota)

    @get(responses=problems(404))
    async def list_tasks(
        self,
        workspace_id: FromPath[UUID],
        use_case: FromDishka[ListTasks],
        status: Annotated[TaskStatus | None, QueryParameter()] = None,
        kind: Annotated[TaskKind | None, QueryParameter()] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> TaskPage:
        page = await use_case.execute(status, kind, limit, cursor)
        return TaskPage([TaskOut.of(task) for task in page.items], page.next_cursor)

    @get("/{task_id:uuid}", responses=problems(404))
    async def read(
        self, workspace_id: FromPath[UUID], task_id: FromPath[UUID], use_case: FromDishka[GetTask]
    ) -> TaskOut:
        return TaskOut.of(await use_case.execute(task_id))

    @post("/{task_id:uuid}/cancel", status_code=202, responses=problems(404))
    async def cancel(
        self,
        workspace_id: FromPath[UUID],
        task_id: FromPath[UUID],
        use_case: FromDishka[CancelTask],
    ) -> TaskOut:
        return TaskOut.of(await use_case.execute(task_id))
