"""The task use cases and the relay over the in-memory fakes: CreateTask's
idempotency, CancelTask's event, RelayTasks and RecoverTasks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
from uuid6 import uuid7

from application.dispatch import RecoverTasks, RelayTasks
from application.tasks import Accepted, CancelTask, CreateTask, GetTask
from domain.entities import (
    Caller,
    Claim,
    Dispatch,
    Lease,
    Role,
    Task,
    TaskKind,
    TaskRef,
    TaskStatus,
    Workspace,
)
from domain.errors import ConflictError, PermissionDeniedError, UnavailableError
from domain.events import EventType, StreamRef
from tests.fakes import (
    FakeClock,
    InMemoryEventBus,
    InMemoryJobQueue,
    InMemoryTaskDispatcher,
    InMemoryTaskStates,
    InMemoryUnitOfWork,
    InMemoryUnitOfWorkFactory,
)

PROMPT = {"prompt": "write a haiku"}


@dataclass
class World:
    factory: InMemoryUnitOfWorkFactory = field(default_factory=InMemoryUnitOfWorkFactory)
    clock: FakeClock = field(default_factory=FakeClock)
    bus: InMemoryEventBus = field(default_factory=InMemoryEventBus)
    queue: InMemoryJobQueue = field(default_factory=InMemoryJobQueue)
    workspace: UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        self.dispatcher = InMemoryTaskDispatcher(self.factory.committed, self.clock)
        self.states = InMemoryTaskStates(self.factory.committed, self.clock)
        self.member = self.join(Role.MEMBER)
        db = self.factory.committed
        db.workspaces[self.workspace] = Workspace(self.workspace, "Acme", created_by=self.member)

    def join(self, role: Role) -> UUID:
        return self.factory.committed.add_member(self.workspace, role)

    def uow(self, user_id: UUID | None = None) -> InMemoryUnitOfWork:
        return self.factory(Caller(user_id or self.member, self.workspace))

    async def create(
        self, key: str | None, data: dict[str, Any] = PROMPT, user_id: UUID | None = None
    ) -> Accepted:
        use_case = CreateTask(self.uow(user_id), uuid7)
        return await use_case.execute(TaskKind.GENERATE, data, 0, 3, key)

    def relay(self) -> RelayTasks:
        return RelayTasks(self.dispatcher, self.queue, self.bus)


@pytest.fixture
def world() -> World:
    return World()


async def test_the_same_idempotency_key_returns_the_same_task(world: World) -> None:
    first = await world.create("k-1")
    again = await world.create("k-1", {"prompt": "write a haiku"})
    assert first.created
    assert not again.created
    assert again.task == first.task
    assert len(world.factory.committed.tasks) == 1


async def test_another_request_with_the_same_key_is_refused(world: World) -> None:
    await world.create("k-1")
    with pytest.raises(ConflictError, match="different request"):
        await world.create("k-1", {"prompt": "something else"})
    assert len(world.factory.committed.tasks) == 1


async def test_the_same_key_in_another_workspace_is_another_task(world: World) -> None:
    first = await world.create("k-1")
    other = World(factory=world.factory)
    second = await other.create("k-1")
    assert second.created
    assert second.task.id != first.task.id


async def test_without_a_key_each_request_is_a_task(world: World) -> None:
    first, second = await world.create(None), await world.create(None)
    assert first.created
    assert second.created
    assert first.task.id != second.task.id


async def test_a_viewer_starts_no_task(world: World) -> None:
    with pytest.raises(PermissionDeniedError):
        await world.create("k-1", user_id=world.join(Role.VIEWER))
    assert world.factory.committed.tasks == {}
    assert world.factory.committed.outbox == {}


async def test_a_created_task_waits_in_the_outbox_until_relayed(world: World) -> None:
    accepted = await world.create(None)
    assert accepted.task.status is TaskStatus.QUEUED
    assert world.queue.jobs == {}
    assert await world.relay().execute() == 1
    assert list(world.queue.jobs) == [(accepted.task.id, 1)]
    assert world.factory.committed.outbox == {}
    assert await world.relay().execute() == 0


async def test_the_relay_publishes_queued_before_the_queue_has_the_task(world: World) -> None:
    accepted = await world.create(None)
    seen_by_queue: list[list[EventType]] = []
    enqueue = world.queue.enqueue

    async def enqueue_after_looking(*dispatches: Dispatch) -> None:
        stream = world.bus.streams.get(_task_stream(accepted.task), [])
        seen_by_queue.append([stored.event.type for stored in stream])
        await enqueue(*dispatches)

    world.queue.enqueue = enqueue_after_looking  # type: ignore[method-assign]
    await world.relay().execute()
    assert seen_by_queue == [[EventType.QUEUED]]


async def test_the_relay_moves_every_batch(world: World) -> None:
    relay = world.relay()
    relay.BATCH = 2
    created = [await world.create(None) for _ in range(5)]
    assert await relay.execute() == 5
    assert {task_id for task_id, _ in world.queue.jobs} == {a.task.id for a in created}


async def test_a_failed_enqueue_leaves_the_tasks_for_the_next_relay(world: World) -> None:
    await world.create(None)
    world.queue.down = True
    with pytest.raises(UnavailableError):
        await world.relay().execute()
    assert len(world.factory.committed.outbox) == 1
    world.queue.down = False
    assert await world.relay().execute() == 1
    assert len(world.queue.jobs) == 1


async def test_a_retried_attempt_is_relayed_without_a_second_queued_event(world: World) -> None:
    accepted = await world.create(None)
    await world.relay().execute()
    ref = _ref(accepted.task)
    claim = await world.states.claim(ref, 4, 30)
    assert isinstance(claim, Claim)
    assert await world.states.retry_later(ref, claim.attempt, 1000, "the model timed out")
    assert await world.relay().execute() == 1
    assert (accepted.task.id, 2) in world.queue.jobs
    stream = world.bus.streams[_task_stream(accepted.task)]
    assert [stored.event.type for stored in stream] == [EventType.QUEUED]


async def test_recovery_dispatches_again_a_task_never_claimed(world: World) -> None:
    accepted = await world.create(None)
    await world.relay().execute()
    recover = RecoverTasks(world.dispatcher, redispatch_after_s=60)
    world.clock.advance(59)
    assert await recover.execute() == 0
    world.clock.advance(1)
    assert await recover.execute() == 1
    assert await world.relay().execute() == 1
    assert (accepted.task.id, 1) in world.queue.jobs  # the same attempt: one job


async def test_recovery_requeues_a_task_whose_lease_lapsed(world: World) -> None:
    accepted = await world.create(None)
    await world.relay().execute()
    ref = _ref(accepted.task)
    claim = await world.states.claim(ref, 4, lease_s=30)
    assert isinstance(claim, Claim)
    recover = RecoverTasks(world.dispatcher, redispatch_after_s=600)
    world.clock.advance(20)
    assert await world.states.heartbeat(ref, claim.attempt, 30, 10) is Lease.HELD
    world.clock.advance(29)
    assert await recover.execute() == 0  # the heartbeat extended the lease
    world.clock.advance(2)
    assert await recover.execute() == 1
    assert await world.states.heartbeat(ref, claim.attempt, 30, 20) is Lease.LOST
    await world.relay().execute()
    assert (accepted.task.id, 2) in world.queue.jobs


async def test_cancelling_a_queued_task_publishes_cancelled(world: World) -> None:
    accepted = await world.create(None)
    cancelled = await CancelTask(world.uow(), world.bus).execute(accepted.task.id)
    assert cancelled.status is TaskStatus.CANCELLED
    assert (await GetTask(world.uow()).execute(accepted.task.id)).status is TaskStatus.CANCELLED
    stream = world.bus.streams[_task_stream(accepted.task)]
    assert [stored.event.type for stored in stream] == [EventType.CANCELLED]
    assert await world.relay().execute() == 0  # it never reaches the queue


async def test_cancelling_a_running_task_asks_it_to_stop(world: World) -> None:
    accepted = await world.create(None)
    await world.relay().execute()
    ref = _ref(accepted.task)
    claim = await world.states.claim(ref, 4, 30)
    assert isinstance(claim, Claim)
    running = await CancelTask(world.uow(), world.bus).execute(accepted.task.id)
    assert running.status is TaskStatus.RUNNING
    stream = world.bus.streams[_task_stream(accepted.task)]
    assert [stored.event.type for stored in stream] == [EventType.QUEUED]  # the worker ends it
    assert await world.states.heartbeat(ref, claim.attempt, 30, 50) is Lease.CANCEL_ASKED


def _ref(task: Task) -> TaskRef:
    return TaskRef(task.workspace_id, task.id, task.created_by)


def _task_stream(task: Task) -> StreamRef:
    return StreamRef(task.workspace_id, task.id)
