"""Per-user transient UI state over HTTP (API.md).

A PUT body is the JSON value itself (any JSON), at most 64 KiB: a larger body
is refused with 413 before it is read to the end. A GET answers the value
exactly as it was sent, inside `{key, value, expires_at}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, delete, get, put
from litestar.params import FromPath, QueryParameter, RawBody

from application.pagination import DEFAULT_LIMIT
from application.ui_state import DeleteUIState, GetUIState, ListUIState, PutUIState
from domain.ui_state import MAX_TTL_S, MAX_VALUE_BYTES, UIState
from entrypoints.http.controllers import Cursor, Limit
from entrypoints.http.openapi import AnyJSONBody, problems

Ttl = Annotated[
    int | None,
    QueryParameter(description=f"Seconds to keep it, 1 to {MAX_TTL_S}; 7 days when absent"),
]


class UIStateKey(msgspec.Struct, frozen=True):
    key: str
    expires_at: datetime

    @classmethod
    def of(cls, state: UIState) -> UIStateKey:
        return cls(key=state.key, expires_at=state.expires_at)


class UIStateOut(msgspec.Struct, frozen=True):
    key: str
    value: msgspec.Raw
    expires_at: datetime


class UIStatePage(msgspec.Struct, frozen=True):
    items: list[UIStateKey]
    next_cursor: str | None


class UIStateController(Controller):
    path = "/v1/workspaces/{workspace_id:uuid}/ui-state"
    tags = ["ui-state"]

    @get(responses=problems(404))
    async def list_keys(
        self,
        workspace_id: FromPath[UUID],
        use_case: FromDishka[ListUIState],
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> UIStatePage:
        page = await use_case.execute(limit, cursor)
        return UIStatePage([UIStateKey.of(state) for state in page.items], page.next_cursor)

    @get("/{key:str}", responses=problems(404))
    async def read(
        self, workspace_id: FromPath[UUID], key: FromPath[str], use_case: FromDishka[GetUIState]
    ) -> UIStateOut:
        state = await use_case.execute(key)
        return UIStateOut(
            key=state.key, value=msgspec.Raw(state.value), expires_at=state.expires_at
        )

    @put(
        "/{key:str}",
        request_max_body_size=MAX_VALUE_BYTES,
        responses=problems(404, 409, 413, 415),
        operation_class=AnyJSONBody,
    )
    async def write(
        self,
        workspace_id: FromPath[UUID],
        key: FromPath[str],
        body: RawBody,
        use_case: FromDishka[PutUIState],
        ttl: Ttl = None,
    ) -> UIStateKey:
        return UIStateKey.of(await use_case.execute(key, body, ttl))

    @delete("/{key:str}", responses=problems(404))
    async def remove(
        self, workspace_id: FromPath[UUID], key: FromPath[str], use_case: FromDishka[DeleteUIState]
    ) -> None:
        await use_case.execute(key)
