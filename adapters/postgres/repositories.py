"""Repositories over Core statements on one tenant-bound connection.

Core rather than the ORM: rows map to frozen domain dataclasses directly,
with no identity map to fill and flush on the hot paths.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.postgres.errors import translated
from adapters.postgres.tables import memberships, users, workspaces
from domain.entities import Membership, Role, User, Workspace, WorkspaceAccess


def _workspace(row: sa.Row[tuple[object, ...]]) -> Workspace:
    return Workspace(
        id=row.id,
        name=row.name,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Repository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def _execute(
        self, statement: sa.Executable, parameters: dict[str, Any] | None = None
    ) -> sa.CursorResult[Any]:
        with translated():
            return await self._conn.execute(statement, parameters)


class PgUserRepository(Repository):
    async def upsert(self, user: User) -> None:
        statement = insert(users).values(id=user.id, email=user.email)
        await self._execute(
            statement.on_conflict_do_update(
                index_elements=[users.c.id],
                set_={"email": statement.excluded.email, "updated_at": sa.func.now()},
                where=users.c.email.is_distinct_from(statement.excluded.email),
            )
        )

    async def get(self, user_id: UUID) -> User | None:
        row = (await self._execute(sa.select(users).where(users.c.id == user_id))).first()
        return User(id=row.id, email=row.email, created_at=row.created_at) if row else None

    async def lock(self, user_id: UUID) -> bool:
        locked = await self._execute(
            sa.select(users.c.id).where(users.c.id == user_id).with_for_update()
        )
        return locked.first() is not None


class PgWorkspaceRepository(Repository):
    async def add(self, workspace: Workspace) -> None:
        await self._execute(
            sa.insert(workspaces).values(
                id=workspace.id, name=workspace.name, created_by=workspace.created_by
            )
        )

    async def get(self, workspace_id: UUID) -> Workspace | None:
        result = await self._execute(sa.select(workspaces).where(workspaces.c.id == workspace_id))
        row = result.first()
        return _workspace(row) if row else None

    async def rename(self, workspace_id: UUID, name: str) -> Workspace | None:
        result = await self._execute(
            sa.update(workspaces)
            .where(workspaces.c.id == workspace_id)
            .values(name=name, updated_at=sa.func.now())
            .returning(workspaces)
        )
        row = result.first()
        return _workspace(row) if row else None

    async def delete(self, workspace_id: UUID) -> bool:
        result = await self._execute(sa.delete(workspaces).where(workspaces.c.id == workspace_id))
        return result.rowcount == 1

    async def list_for_user(
        self, user_id: UUID, after: UUID | None, limit: int | None
    ) -> list[WorkspaceAccess]:
        query = (
            sa.select(workspaces, memberships.c.role)
            .join(memberships, memberships.c.workspace_id == workspaces.c.id)
            .where(memberships.c.user_id == user_id)
            .order_by(memberships.c.workspace_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(memberships.c.workspace_id > after)
        result = await self._execute(query)
        return [WorkspaceAccess(_workspace(row), Role(row.role)) for row in result]

    async def count_owned(self, user_id: UUID) -> int:
        result = await self._execute(
            sa.select(sa.func.count()).where(
                memberships.c.user_id == user_id, memberships.c.role == Role.OWNER.value
            )
        )
        return int(result.scalar_one())


def _membership(row: sa.Row[tuple[object, ...]]) -> Membership:
    return Membership(
        workspace_id=row.workspace_id,
        user_id=row.user_id,
        role=Role(row.role),
        email=row.email,
        created_at=row.created_at,
    )


_MEMBER_VIEW = sa.select(memberships, users.c.email).join(
    users, users.c.id == memberships.c.user_id
)


class PgMembershipRepository(Repository):
    async def role_of(self, workspace_id: UUID, user_id: UUID) -> Role | None:
        result = await self._execute(
            sa.select(memberships.c.role).where(
                memberships.c.workspace_id == workspace_id, memberships.c.user_id == user_id
            )
        )
        role = result.scalar_one_or_none()
        return Role(str(role)) if role else None

    async def get(self, workspace_id: UUID, user_id: UUID) -> Membership | None:
        result = await self._execute(
            _MEMBER_VIEW.where(
                memberships.c.workspace_id == workspace_id, memberships.c.user_id == user_id
            )
        )
        row = result.first()
        return _membership(row) if row else None

    async def add(self, membership: Membership) -> None:
        await self._execute(
            sa.insert(memberships).values(
                workspace_id=membership.workspace_id,
                user_id=membership.user_id,
                role=membership.role.value,
            )
        )

    async def set_role(self, workspace_id: UUID, user_id: UUID, role: Role) -> Membership | None:
        result = await self._execute(
            sa.update(memberships)
            .where(memberships.c.workspace_id == workspace_id, memberships.c.user_id == user_id)
            .values(role=role.value, updated_at=sa.func.now())
        )
        if result.rowcount != 1:
            return None
        return await self.get(workspace_id, user_id)

    async def remove(self, workspace_id: UUID, user_id: UUID) -> bool:
        result = await self._execute(
            sa.delete(memberships).where(
                memberships.c.workspace_id == workspace_id, memberships.c.user_id == user_id
            )
        )
        return result.rowcount == 1

    async def list(self, workspace_id: UUID, after: UUID | None, limit: int) -> list[Membership]:
        query = (
            _MEMBER_VIEW.where(memberships.c.workspace_id == workspace_id)
            .order_by(memberships.c.user_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(memberships.c.user_id > after)
        return [_membership(row) for row in await self._execute(query)]
