"""The API's part of the composition root: what `keel api` adds to the shared
providers (entrypoints/ioc.py). The HTTP layer names ports and Litestar types
only; which adapter serves them is decided here.

APP scope: the readiness probes, the start-up check of the database role and
the rate limits' store (on the shared Redis client: no second pool, closed
with the container). REQUEST scope: the caller, the unit of work bound to it,
and the request's use cases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from dishka import AsyncContainer, Provider, Scope, make_async_container, provide, provide_all
from dishka.integrations.litestar import LitestarProvider
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.health import PgHealthProbe
from adapters.redis.client import RedisClient
from adapters.redis.health import RedisHealthProbe
from adapters.redis.rate_limit import RedisRateLimit
from application.dead_letters import GetDeadLetter, ListDeadLetters, ReplayDeadLetter
from application.events import IssueStreamTicket, OpenEventStream
from application.foundation import (
    CreateDocument,
    DeleteDocument,
    GetDocument,
    GetFoundationBundle,
    ListDocuments,
    UpdateDocument,
)
from application.members import AddMember, ChangeMemberRole, ListMembers, RemoveMember
from application.profiles import GetMe
from application.tasks import CancelTask, CreateTask, GetTask, ListTasks
from application.ui_state import DeleteUIState, GetUIState, ListUIState, PutUIState
from application.webhooks import ConfigureWebhook, DeleteWebhook, GetWebhook
from application.workspaces import (
    CreateWorkspace,
    DeleteWorkspace,
    GetWorkspace,
    ListWorkspaces,
    RenameWorkspace,
)
from domain.entities import Caller
from domain.ports import HealthProbe, RateLimit, StartupCheck, UnitOfWork, UnitOfWorkFactory
from entrypoints.ioc import InfrastructureProvider
from entrypoints.role_checks import check_database_role
from entrypoints.settings import Settings


class _DatabaseRoleCheck:
    """The runtime role must be bound by row-level security (role_checks.py)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def check(self) -> None:
        await check_database_role(self._engine)


class ApiProvider(Provider):
    scope = Scope.APP

    @provide
    def probes(self, engine: AsyncEngine, redis: RedisClient) -> list[HealthProbe]:
        return [PgHealthProbe(engine), RedisHealthProbe(redis)]

    @provide
    def startup_check(self, engine: AsyncEngine) -> StartupCheck:
        return _DatabaseRoleCheck(engine)

    @provide
    async def task_rate_limit(
        self, redis: RedisClient, settings: Settings
    ) -> AsyncIterator[RateLimit]:
        assert settings.redis_url is not None
        limit = RedisRateLimit.on(redis, settings.redis_url, settings.task_rate_per_minute)
        yield limit
        await limit.aclose()


class HttpCallerProvider(Provider):
    """The caller of an HTTP request: the token's user, the path's workspace."""

    scope = Scope.REQUEST

    @provide
    def caller(self, request: Request) -> Caller:  # type: ignore[type-arg]
        workspace = request.path_params.get("workspace_id")
        return Caller(
            user_id=request.user.user_id,
            workspace_id=workspace if isinstance(workspace, UUID) else None,
        )


class RequestProvider(Provider):
    scope = Scope.REQUEST

    @provide
    def uow(self, factory: UnitOfWorkFactory, caller: Caller) -> UnitOfWork:
        return factory(caller)

    use_cases = provide_all(
        GetMe,
        CreateWorkspace,
        ListWorkspaces,
        GetWorkspace,
        RenameWorkspace,
        DeleteWorkspace,
        ListMembers,
        AddMember,
        ChangeMemberRole,
        RemoveMember,
        CreateDocument,
        ListDocuments,
        GetDocument,
        GetFoundationBundle,
        UpdateDocument,
        DeleteDocument,
        CreateTask,
        ListTasks,
        GetTask,
        CancelTask,
        ListDeadLetters,
        GetDeadLetter,
        ReplayDeadLetter,
        IssueStreamTicket,
        OpenEventStream,
        GetUIState,
        PutUIState,
        DeleteUIState,
        ListUIState,
        GetWebhook,
        ConfigureWebhook,
        DeleteWebhook,
    )


def make_container(settings: Settings, *extra: Provider) -> AsyncContainer:
    """The API's container; `extra` providers override (tests)."""
    return make_async_container(
        InfrastructureProvider(),
        ApiProvider(),
        RequestProvider(),
        HttpCallerProvider(),
        LitestarProvider(),
        *extra,
        context={Settings: settings},
    )
