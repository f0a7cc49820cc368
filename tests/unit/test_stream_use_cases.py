"""Stream tickets and event streams over the in-memory fakes, on a FakeClock:
a ticket's expiry is the clock's now plus its lifetime, the per-user bound
lapses with the tickets, and a task's feed ends after its terminal event."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

import pytest

from application.events import TICKET_TTL_S, IssueStreamTicket, OpenEventStream, StreamLimits
from domain.entities import Caller, Membership, Role, Task, TaskKind, TaskStatus, User, Workspace
from domain.errors import NotFoundError, RateLimitedError, StreamEndedError
from domain.events import EventType, StoredEvent, StreamRef, TaskEvent
from tests.fakes import (
    FakeClock,
    InMemoryCache,
    InMemoryEventBus,
    InMemoryOpenStreams,
    InMemoryStreamTickets,
    InMemoryUnitOfWorkFactory,
    TaskRow,
)

LIMITS = StreamLimits(heartbeat_s=5, per_user=2, ended_grace_s=0.01, tickets_per_user=2)


@dataclass
class World:
    factory: InMemoryUnitOfWorkFactory = field(default_factory=InMemoryUnitOfWorkFactory)
    cache: InMemoryCache = field(default_factory=InMemoryCache)
    clock: FakeClock = field(default_factory=FakeClock)
    bus: InMemoryEventBus = field(default_factory=InMemoryEventBus)
    slots: InMemoryOpenStreams = field(default_factory=InMemoryOpenStreams)
    workspace: UUID = field(default_factory=uuid.uuid4)
    user: UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        self.tickets = InMemoryStreamTickets(self.clock)
        db = self.factory.committed
        db.users[self.user] = User(self.user, None)
        db.workspaces[self.workspace] = Workspace(self.workspace, "Acme", created_by=self.user)
        db.memberships[self.workspace, self.user] = Membership(
            self.workspace, self.user, Role.VIEWER
        )

    def task(self, status: TaskStatus = TaskStatus.RUNNING) -> Task:
        task = Task(self.workspace, uuid.uuid4(), TaskKind.GENERATE, status, {}, self.user)
        self.factory.committed.tasks[task.id] = TaskRow(task)
        return task

    def issue(self) -> IssueStreamTicket:
        uow = self.factory(Caller(self.user, self.workspace))
        return IssueStreamTicket(uow, self.cache, self.tickets, LIMITS, self.clock)

    def open(self) -> OpenEventStream:
        uow = self.factory(Caller(self.user, self.workspace))
        return OpenEventStream(uow, self.cache, self.bus, self.slots, LIMITS, self.clock)


@pytest.fixture
def world() -> World:
    return World()


async def test_a_ticket_expires_its_lifetime_after_the_clocks_now(world: World) -> None:
    ticket, grant = await world.issue().execute(None)
    assert grant.expires_at == world.clock.now() + timedelta(seconds=TICKET_TTL_S)
    world.clock.advance(TICKET_TTL_S - 1)
    assert await world.tickets.redeem(ticket) == grant


async def test_an_expired_ticket_opens_nothing(world: World) -> None:
    ticket, _ = await world.issue().execute(None)
    world.clock.advance(TICKET_TTL_S)
    assert await world.tickets.redeem(ticket) is None


async def test_the_ticket_bound_lapses_with_the_tickets(world: World) -> None:
    for _ in range(LIMITS.tickets_per_user):
        await world.issue().execute(None)
    with pytest.raises(RateLimitedError) as refused:
        await world.issue().execute(None)
    assert refused.value.retry_after_s == int(TICKET_TTL_S)
    world.clock.advance(TICKET_TTL_S - 1)
    with pytest.raises(RateLimitedError):
        await world.issue().execute(None)
    world.clock.advance(1)
    await world.issue().execute(None)


async def test_a_ticket_for_a_task_of_another_workspace_is_refused(world: World) -> None:
    stranger = World()
    with pytest.raises(NotFoundError):
        await world.issue().execute(stranger.task().id)


async def test_a_task_feed_replays_and_ends_after_the_terminal_event(world: World) -> None:
    task = world.task()
    await world.bus.publish(
        TaskEvent(world.workspace, task.id, EventType.STARTED),
        TaskEvent(world.workspace, task.id, EventType.SUCCEEDED, {"result": {}}),
    )
    feed = await world.open().execute(task.id, None)
    try:
        seen = [event async for event in feed]
    finally:
        await feed.close()
    assert [_type(event) for event in seen] == [EventType.STARTED, EventType.SUCCEEDED]
    await asyncio.sleep(0)  # close() releases the slot in a task of its own
    assert world.slots.slots[world.user] == set()


async def test_resuming_after_the_terminal_event_is_refused(world: World) -> None:
    task = world.task(TaskStatus.SUCCEEDED)
    await world.bus.publish(TaskEvent(world.workspace, task.id, EventType.SUCCEEDED))
    newest = await world.bus.newest(StreamRef(world.workspace, task.id))
    assert newest is not None
    with pytest.raises(StreamEndedError):
        await world.open().execute(task.id, newest.id)


async def test_an_ended_task_whose_stream_lost_its_ending_gets_it_from_the_database(
    world: World,
) -> None:
    task = world.task(TaskStatus.CANCELLED)
    feed = await world.open().execute(task.id, None)
    try:
        seen = [event async for event in feed]
    finally:
        await feed.close()
    assert [_type(event) for event in seen] == [EventType.CANCELLED]


async def test_one_stream_too_many_is_refused(world: World) -> None:
    feeds = [await world.open().execute(None, None) for _ in range(LIMITS.per_user)]
    with pytest.raises(RateLimitedError):
        await world.open().execute(None, None)
    await feeds[0].close()
    await asyncio.sleep(0)  # close() releases the slot in a task of its own
    again = await world.open().execute(None, None)
    for feed in [*feeds[1:], again]:
        await feed.close()


def _type(event: StoredEvent | None) -> EventType | None:
    return event.event.type if event is not None else None
