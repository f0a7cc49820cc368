"""The unit of work: one transaction, run as `keel_app`, in one tenant context.

The first statement of every transaction switches to the restricted role and
sets the tenant variables transaction-locally, in one round trip. Being
transaction-local, none of it can leak to the next user of a pooled
connection, and row-level security reads the variables in every policy.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from adapters.postgres.errors import translated
from adapters.postgres.foundation import PgFoundationRepository
from adapters.postgres.repositories import (
    PgMembershipRepository,
    PgUserRepository,
    PgWorkspaceRepository,
)
from adapters.postgres.tasks import PgTaskRepository
from adapters.postgres.webhooks import PgWebhookRepository
from domain.entities import Caller
from domain.ports import (
    FoundationRepository,
    MembershipRepository,
    TaskRepository,
    UserRepository,
    WebhookRepository,
    WorkspaceRepository,
)

APP_ROLE = "keel_app"

_ENTER_TENANT = sa.text(
    "select set_config('role', :role, true),"
    " set_config('app.user_id', :user_id, true),"
    " set_config('app.workspace_id', :workspace_id, true)"
)


async def enter_tenant(conn: AsyncConnection, caller: Caller) -> None:
    """Become `keel_app` in `caller`'s tenant context until the transaction ends."""
    await conn.execute(
        _ENTER_TENANT,
        {
            "role": APP_ROLE,
            "user_id": str(caller.user_id),
            "workspace_id": str(caller.workspace_id) if caller.workspace_id else "",
        },
    )


class PgUnitOfWork:
    users: UserRepository
    workspaces: WorkspaceRepository
    memberships: MembershipRepository
    foundation: FoundationRepository
    tasks: TaskRepository
    webhooks: WebhookRepository

    def __init__(self, engine: AsyncEngine, caller: Caller) -> None:
        self._engine = engine
        self.caller = caller
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

    async def __aenter__(self) -> Self:
        with translated():
            try:
                conn = await self._begin()
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                # The session had ended before anything ran on the connection
                # (liveness.py): nothing to undo, so once more on a new one.
                conn = await self._begin()
        self._conn = conn
        self.users = PgUserRepository(conn)
        self.workspaces = PgWorkspaceRepository(conn)
        self.memberships = PgMembershipRepository(conn)
        self.foundation = PgFoundationRepository(conn)
        self.tasks = PgTaskRepository(conn)
        self.webhooks = PgWebhookRepository(conn)
        return self

    async def _begin(self) -> AsyncConnection:
        conn = await self._engine.connect()
        try:
            self._tx = await conn.begin()
            await enter_tenant(conn, self.caller)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def commit(self) -> None:
        assert self._tx is not None, "commit outside `async with`"
        with translated():
            await self._tx.commit()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        if conn is None:
            return
        try:
            if tx is not None and tx.is_active:
                with translated():  # the session may have ended under it
                    await tx.rollback()
        finally:
            await conn.close()


class PgUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def __call__(self, caller: Caller) -> PgUnitOfWork:
        return PgUnitOfWork(self._engine, caller)
