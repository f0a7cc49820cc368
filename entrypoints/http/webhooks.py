"""A workspace's task webhook over HTTP (owners only): PUT, GET, DELETE."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from dishka.integrations.litestar import FromDishka
from litestar import Controller, Response, delete, get, put
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from application.webhooks import ConfigureWebhook, DeleteWebhook, GetWebhook
from entrypoints.http.openapi import problems
from entrypoints.http.schemas import WebhookIn, WebhookOut

Rotate = Annotated[
    bool, QueryParameter(description="Replace the signing secret (the answer shows the new one)")
]


class WebhookController(Controller):
    path = "/v1/workspaces/{workspace_id:uuid}/webhook"
    tags = ["webhooks"]

    @put(
        responses={
            201: ResponseSpec(WebhookOut, description="Created: the answer shows its secret"),
            **problems(404, 413, 415),
        }
    )
    async def configure(
        self,
        workspace_id: FromPath[UUID],
        data: JSONBody[WebhookIn],
        use_case: FromDishka[ConfigureWebhook],
        rotate: Rotate = False,
    ) -> Response[WebhookOut]:
        saved = await use_case.execute(data.url, rotate)
        return Response(
            WebhookOut.of(saved.webhook, saved.secret), status_code=201 if saved.created else 200
        )

    @get(responses=problems(404))
    async def read(
        self, workspace_id: FromPath[UUID], use_case: FromDishka[GetWebhook]
    ) -> WebhookOut:
        return WebhookOut.of(await use_case.execute())

    @delete(responses=problems(404))
    async def remove(
        self, workspace_id: FromPath[UUID], use_case: FromDishka[DeleteWebhook]
    ) -> None:
        await use_case.execute()
