"""The composition root: the only place that knows which adapter serves which port.

Here: what the API and the worker share (settings, the SQLAlchemy engine,
the Redis client, the process-wide use cases; APP scope) and what a worker
adds. The API's own providers are in entrypoints/api.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from dishka import (
    AsyncContainer,
    Provider,
    Scope,
    from_context,
    make_async_container,
    provide,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from uuid6 import uuid7

from adapters.clock import SystemClock
from adapters.models.openai import OpenAICompatibleModel
from adapters.models.simulated import SimulatedModel
from adapters.pass_through_cache import PassThroughCache
from adapters.postgres.database import create_engine
from adapters.postgres.dispatch import PgTaskDispatcher
from adapters.postgres.observability import instrument, trace_statements
from adapters.postgres.task_states import PgTaskStates
from adapters.postgres.uow import PgUnitOfWorkFactory
from adapters.postgres.webhooks import PgWebhookDeliveries
from adapters.redis.cache import RedisCache
from adapters.redis.client import RedisClient, close_client, create_listener, create_redis
from adapters.redis.consumer import BullMQTaskConsumer, ConsumerSettings
from adapters.redis.events import RedisEventBus
from adapters.redis.queue import BullMQJobQueue
from adapters.redis.streams import RedisOpenStreams, RedisStreamTickets
from adapters.redis.ui_state import RedisUIStateStore
from adapters.webhooks.network import SystemResolver
from adapters.webhooks.sender import StandardWebhookSender
from application.dead_letters import (
    ReplayRetriedJob,
)
from application.deliver_webhooks import DeliverWebhooks
from application.dispatch import RecoverTasks, RelayTasks
from application.events import EventBacklog, StreamLimits
from application.profiles import RegisterCaller
from application.run_task import RunnerSettings, RunTask
from application.webhooks import WebhookSettings
from application.workspaces import (
    WorkspaceLimits,
)
from domain.ports import (
    AddressResolver,
    Cache,
    Clock,
    EventBus,
    EventPublisher,
    IdGenerator,
    JobQueue,
    LanguageModel,
    OpenStreams,
    StreamTickets,
    TaskConsumer,
    TaskDispatcher,
    TaskStates,
    UIStateStore,
    UnitOfWorkFactory,
    WebhookDeliveries,
    WebhookSender,
)
from domain.retry import Backoff
from domain.ui_state import UIStateQuota
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
            statement_cache=settings.statement_cache,
            command_timeout_s=settings.db_command_timeout_s,
        )
        instrument(engine, settings.slow_query_ms)
        if settings.tracing:
            trace_statements(engine)
        yield engine
        await engine.dispose()

    @provide
    async def redis(self, settings: Settings) -> AsyncIterator[RedisClient]:
        assert settings.redis_url is not None
        client = create_redis(settings.redis_url, cluster=settings.redis_cluster)
        yield client
        await close_client(client)

    @provide
    async def cache(self, settings: Settings) -> AsyncIterator[Cache]:
        if not settings.cache:
            yield PassThroughCache()
            return
        assert settings.redis_url is not None
        timeout_s = settings.cache_timeout_ms / 1000
        client = create_redis(
            settings.redis_url,
            cluster=settings.redis_cluster,
            timeout_s=timeout_s,
            retries=0,
            wait_s=timeout_s,
        )
        cache = RedisCache(client, bytes_per_workspace=settings.cache_bytes_per_workspace)
        yield cache
        await cache.retries.close()
        await close_client(client)

    @provide
    def ui_state(self, redis: RedisClient) -> UIStateStore:
        return RedisUIStateStore(redis)

    @provide
    async def events(self, settings: Settings, redis: RedisClient) -> AsyncIterator[EventBus]:
        assert settings.redis_url is not None
        listener = create_listener(settings.redis_url, cluster=settings.redis_cluster)
        bus = RedisEventBus(redis, listener, buffer=settings.sse_buffer_events)
        yield bus
        await bus.close()
        await listener.aclose()

    @provide
    async def publisher(self, bus: EventBus) -> AsyncIterator[EventPublisher]:
        """The bus behind a backlog: what Redis cannot take now is sent when it can."""
        assert isinstance(bus, RedisEventBus)
        backlog = EventBacklog(bus)
        yield backlog
        await backlog.close()

    @provide
    def stream_tickets(self, redis: RedisClient) -> StreamTickets:
        return RedisStreamTickets(redis)

    @provide
    def open_streams(self, redis: RedisClient) -> OpenStreams:
        return RedisOpenStreams(redis)

    @provide
    def stream_limits(self, settings: Settings) -> StreamLimits:
        return StreamLimits(
            heartbeat_s=settings.sse_heartbeat_s,
            per_user=settings.sse_streams_per_user,
            tickets_per_user=settings.sse_tickets_per_user,
        )

    @provide
    def ui_state_quota(self, settings: Settings) -> UIStateQuota:
        return UIStateQuota(
            entries_per_user=settings.ui_state_entries_per_user,
            bytes_per_user=settings.ui_state_bytes_per_user,
        )

    @provide
    def workspace_limits(self, settings: Settings) -> WorkspaceLimits:
        return WorkspaceLimits(owned_per_user=settings.max_workspaces_per_user)

    @provide
    def uow_factory(self, engine: AsyncEngine) -> UnitOfWorkFactory:
        return PgUnitOfWorkFactory(engine)

    @provide
    def ids(self) -> IdGenerator:
        return uuid7

    @provide
    def clock(self) -> Clock:
        return SystemClock()

    @provide
    def webhook_settings(self, settings: Settings) -> WebhookSettings:
        return WebhookSettings(
            allow_private=settings.webhook_allow_private,
            max_attempts=settings.webhook_max_attempts,
            lease_s=settings.webhook_lease_s,
            # The same policy as a failed task attempt's.
            backoff=Backoff(settings.retry_base_ms, settings.retry_cap_ms),
        )

    @provide
    def resolver(self) -> AddressResolver:
        return SystemResolver()

    register_caller = provide(RegisterCaller)


class WorkerProvider(Provider):
    """What a worker process adds: the model, the queue, the outbox, the runner."""

    scope = Scope.APP

    @provide
    async def model(self, settings: Settings) -> AsyncIterator[LanguageModel]:
        if settings.model_provider == "openai":
            settings.require("openai_base_url", "openai_model")
            model = OpenAICompatibleModel(
                str(settings.openai_base_url), settings.openai_api_key, str(settings.openai_model)
            )
            yield model
            await model.aclose()
            return
        yield SimulatedModel(settings.sim_token_delay_ms, settings.sim_fail_rate)

    @provide
    async def queue(self, settings: Settings) -> AsyncIterator[JobQueue]:
        assert settings.redis_url is not None
        queue = BullMQJobQueue(settings.redis_url, settings.queue_prefix, settings.redis_cluster)
        yield queue
        await queue.close()

    @provide
    async def dispatcher(
        self, settings: Settings, engine: AsyncEngine
    ) -> AsyncIterator[TaskDispatcher]:
        dispatcher = PgTaskDispatcher(engine, settings.listen_url, settings.db_command_timeout_s)
        yield dispatcher
        await dispatcher.close()

    @provide
    def task_states(self, settings: Settings, engine: AsyncEngine) -> TaskStates:
        return PgTaskStates(engine, settings.slow_query_ms)

    @provide
    def runner_settings(self, settings: Settings) -> RunnerSettings:
        return RunnerSettings(
            max_running_per_workspace=settings.workspace_max_running,
            lease_s=settings.task_lease_s,
            backoff=Backoff(settings.retry_base_ms, settings.retry_cap_ms),
        )

    @provide
    def recover(self, settings: Settings, dispatcher: TaskDispatcher) -> RecoverTasks:
        return RecoverTasks(dispatcher, settings.task_redispatch_s)

    @provide
    def webhook_deliveries(self, engine: AsyncEngine) -> WebhookDeliveries:
        return PgWebhookDeliveries(engine)

    @provide
    async def webhook_sender(self, settings: Settings) -> AsyncIterator[WebhookSender]:
        sender = StandardWebhookSender(settings.webhook_allow_private, settings.webhook_timeout_s)
        yield sender
        await sender.aclose()

    @provide
    def consumer(
        self, settings: Settings, run: RunTask, replay: ReplayRetriedJob, queue: JobQueue
    ) -> TaskConsumer:
        assert settings.redis_url is not None
        options = ConsumerSettings(
            settings.redis_url,
            settings.queue_prefix,
            settings.task_lease_s,
            settings.worker_fetching,
            settings.redis_cluster,
        )
        return BullMQTaskConsumer(run, replay, queue, options)

    run_task = provide(RunTask)
    replay_retried = provide(ReplayRetriedJob)
    relay = provide(RelayTasks)
    deliver_webhooks = provide(DeliverWebhooks)


def make_worker_container(settings: Settings) -> AsyncContainer:
    return make_async_container(
        InfrastructureProvider(), WorkerProvider(), context={Settings: settings}
    )
