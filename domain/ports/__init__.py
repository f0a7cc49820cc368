"""Ports: what the application needs from the outside world, as Protocols.

Adapters implement them (adapters/postgres, adapters/redis); tests use the
in-memory fakes in tests/fakes.py. Every repository works inside the tenant
context of the unit of work that owns it; the database enforces that context
again with row-level security.

One module per concern; this package re-exports every port, so
`from domain.ports import Cache` is the way to name one.
"""

from domain.ports.cache import Cache
from domain.ports.events import (
    EventBus,
    EventPublisher,
    OpenStreams,
    StreamTickets,
    Subscription,
)
from domain.ports.health import (
    HealthProbe,
    StartupCheck,
)
from domain.ports.identity import (
    Clock,
    IdGenerator,
)
from domain.ports.limits import Quota, RateLimit
from domain.ports.models import LanguageModel
from domain.ports.queue import (
    JobQueue,
    TaskConsumer,
    TaskDispatcher,
)
from domain.ports.repositories import (
    FoundationRepository,
    MembershipRepository,
    TaskRepository,
    TaskStates,
    UserRepository,
    WebhookRepository,
    WorkspaceRepository,
)
from domain.ports.ui_state import UIStateStore
from domain.ports.uow import (
    UnitOfWork,
    UnitOfWorkFactory,
)
from domain.ports.webhooks import (
    AddressResolver,
    WebhookDeliveries,
    WebhookSender,
)

__all__ = [
    "AddressResolver",
    "Cache",
    "Clock",
    "EventBus",
    "EventPublisher",
    "FoundationRepository",
    "HealthProbe",
    "IdGenerator",
    "JobQueue",
    "LanguageModel",
    "MembershipRepository",
    "OpenStreams",
    "Quota",
    "RateLimit",
    "StartupCheck",
    "StreamTickets",
    "Subscription",
    "TaskConsumer",
    "TaskDispatcher",
    "TaskRepository",
    "TaskStates",
    "UIStateStore",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UserRepository",
    "WebhookDeliveries",
    "WebhookRepository",
    "WebhookSender",
    "WorkspaceRepository",
]
