"""The composition root: the only place that knows which adapter serves which port.

APP scope: settings, the SQLAlchemy engine, the Redis client and the
process-wide use cases. REQUEST scope: the caller, the unit of work bound to
it, and the request's use cases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from dishka import (
    AsyncContainer,
    Provider,
    Scope,
    from_context,
    make_async_container,
    provide,
    provide_all,
)
from dishka.integrations.litestar import LitestarProvider
from litestar import Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from uuid6 import uuid7

from adapters.postgres.database import create_engine
from adapters.postgres.observability import instrument
from adapters.postgres.uow import PgUnitOfWorkFactory
from adapters.redis.cache import PassThroughCache, RedisCache
from adapters.redis.client import create_redis
from application.foundation import (
    CreateDocument,
    DeleteDocument,
    GetDocument,
    GetFoundationBundle,
    ListDocuments,
    UpdateDocument,
)
from application.members import AddMember, ChangeMemberRole, ListMembers, RemoveMember
from application.profiles import GetMe, RegisterCaller
from application.workspaces import (
    CreateWorkspace,
    DeleteWorkspace,
    GetWorkspace,
    ListWorkspaces,
    RenameWorkspace,
)
from domain.entities import Caller
from domain.ports import Cache, IdGenerator, UnitOfWork, UnitOfWorkFactory
from entrypoints.settings import Settings


class InfrastructureProvider(Provider):
    scope = Scope.APP
    settings = from_context(provides=Settings, scope=Scope.APP)

    @provide
    async def engine(self, settings: Settings) -> AsyncIterator[AsyncEngine]:
        assert settings.database_url is not None
        engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            statement_cache=settings.db_statement_cache,
        )
        instrument(engine, settings.slow_query_ms)
        yield engine
        await engine.dispose()

    @provide
    async def redis(self, settings: Settings) -> AsyncIterator[Redis]:
        assert settings.redis_url is not None
        client = create_redis(settings.redis_url)
        yield client
        await client.aclose()

    @provide
    async def cache(self, settings: Settings) -> AsyncIterator[Cache]:
        if not settings.cache:
            yield PassThroughCache()
            return
        assert settings.redis_url is not None
        client = create_redis(
            settings.redis_url, timeout_s=settings.cache_timeout_ms / 1000, retries=0
        )
        yield RedisCache(client)
        await client.aclose()

    @provide
    def uow_factory(self, engine: AsyncEngine) -> UnitOfWorkFactory:
        return PgUnitOfWorkFactory(engine)

    @provide
    def ids(self) -> IdGenerator:
        return uuid7

    register_caller = provide(RegisterCaller)


class RequestProvider(Provider):
    scope = Scope.REQUEST

    @provide
    def caller(self, request: Request) -> Caller:  # type: ignore[type-arg]
        workspace = request.path_params.get("workspace_id")
        return Caller(
            user_id=request.user.user_id,
            workspace_id=workspace if isinstance(workspace, UUID) else None,
        )

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
    )


def make_container(settings: Settings, *extra: Provider) -> AsyncContainer:
    return make_async_container(
        InfrastructureProvider(),
        RequestProvider(),
        LitestarProvider(),
        *extra,
        context={Settings: settings},
    )
