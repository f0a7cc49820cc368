"""Thin controllers: parse, call one use case, shape the response."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from dishka.integrations.litestar import FromDishka
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from application.members import AddMember, ChangeMemberRole, ListMembers, RemoveMember
from application.pagination import DEFAULT_LIMIT
from application.profiles import GetMe
from application.workspaces import (
    CreateWorkspace,
    DeleteWorkspace,
    GetWorkspace,
    ListWorkspaces,
    RenameWorkspace,
)
from entrypoints.http.openapi import problems
from entrypoints.http.schemas import (
    MemberOut,
    MemberPage,
    MeOut,
    NewMember,
    RoleChange,
    WorkspaceName,
    WorkspaceOut,
    WorkspacePage,
)

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size")]
Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page")]


class MeController(Controller):
    path = "/v1/me"
    tags = ["profile"]

    @get(responses=problems())
    async def me(self, use_case: FromDishka[GetMe]) -> MeOut:
        me = await use_case.execute()
        return MeOut(
            id=me.user.id,
            email=me.user.email,
            created_at=me.user.created_at,
            memberships=[WorkspaceOut.of(access) for access in me.memberships],
        )


class WorkspaceController(Controller):
    path = "/v1/workspaces"
    tags = ["workspaces"]

    @post(responses=problems(409, 413, 415))
    async def create(
        self, data: JSONBody[WorkspaceName], use_case: FromDishka[CreateWorkspace]
    ) -> WorkspaceOut:
        return WorkspaceOut.of(await use_case.execute(data.name))

    @get(responses=problems())
    async def list_mine(
        self,
        use_case: FromDishka[ListWorkspaces],
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> WorkspacePage:
        page = await use_case.execute(limit, cursor)
        return WorkspacePage([WorkspaceOut.of(item) for item in page.items], page.next_cursor)

    @get("/{workspace_id:uuid}", responses=problems(404))
    async def read(
        self, workspace_id: FromPath[UUID], use_case: FromDishka[GetWorkspace]
    ) -> WorkspaceOut:
        return WorkspaceOut.of(await use_case.execute())

    @patch("/{workspace_id:uuid}", responses=problems(404, 413, 415))
    async def rename(
        self,
        workspace_id: FromPath[UUID],
        data: JSONBody[WorkspaceName],
        use_case: FromDishka[RenameWorkspace],
    ) -> WorkspaceOut:
        return WorkspaceOut.of(await use_case.execute(data.name))

    @delete("/{workspace_id:uuid}", responses=problems(404))
    async def remove(
        self, workspace_id: FromPath[UUID], use_case: FromDishka[DeleteWorkspace]
    ) -> None:
        await use_case.execute()


class MemberController(Controller):
    path = "/v1/workspaces/{workspace_id:uuid}/members"
    tags = ["members"]

    @get(responses=problems(404))
    async def list_members(
        self,
        workspace_id: FromPath[UUID],
        use_case: FromDishka[ListMembers],
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> MemberPage:
        page = await use_case.execute(limit, cursor)
        return MemberPage([MemberOut.of(item) for item in page.items], page.next_cursor)

    @post(responses=problems(404, 409, 413, 415))
    async def add(
        self,
        workspace_id: FromPath[UUID],
        data: JSONBody[NewMember],
        use_case: FromDishka[AddMember],
    ) -> MemberOut:
        return MemberOut.of(await use_case.execute(data.user_id, data.role))

    @patch("/{user_id:uuid}", responses=problems(404, 413, 415))
    async def change_role(
        self,
        workspace_id: FromPath[UUID],
        user_id: FromPath[UUID],
        data: JSONBody[RoleChange],
        use_case: FromDishka[ChangeMemberRole],
    ) -> MemberOut:
        return MemberOut.of(await use_case.execute(user_id, data.role))

    @delete("/{user_id:uuid}", responses=problems(404))
    async def remove(
        self,
        workspace_id: FromPath[UUID],
        user_id: FromPath[UUID],
        use_case: FromDishka[RemoveMember],
    ) -> None:
        await use_case.execute(user_id)
