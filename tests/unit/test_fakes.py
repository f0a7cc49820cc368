"""The in-memory fakes behave like the Postgres adapter where use cases can tell."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, timedelta
from uuid import UUID

import pytest

from domain.entities import (
    Caller,
    Claim,
    ClaimRefused,
    Dispatch,
    Lease,
    Membership,
    Role,
    Task,
    TaskKind,
    TaskRef,
    TaskStatus,
    User,
    Workspace,
)
from domain.errors import ConflictError, LastOwnerError, NotFoundError, TransientModelError
from domain.events import EventType, StreamRef, TaskEvent
from domain.ports import UnitOfWorkFactory
from tests.fakes import (
    FakeClock,
    InMemoryEventBus,
    InMemoryJobQueue,
    InMemoryTaskStates,
    InMemoryUnitOfWorkFactory,
    IntegrityViolation,
    ScriptedModel,
    Tables,
)

WORKSPACE = uuid.uuid4()


def _seed(tables: Tables, *members: tuple[UUID, Role]) -> UUID:
    """A committed workspace with `members`; the first one created it."""
    workspace_id = uuid.uuid4()
    for user_id, _ in members:
        tables.users.setdefault(user_id, User(user_id, f"{user_id.hex[:6]}@example.test"))
    tables.workspaces[workspace_id] = Workspace(workspace_id, "W", created_by=members[0][0])
    for user_id, role in members:
        tables.memberships[workspace_id, user_id] = Membership(workspace_id, user_id, role)
    return workspace_id


@pytest.fixture
def factory() -> InMemoryUnitOfWorkFactory:
    return InMemoryUnitOfWorkFactory()


def test_the_factory_satisfies_the_port(factory: InMemoryUnitOfWorkFactory) -> None:
    port: UnitOfWorkFactory = factory
    uow = port(Caller(uuid.uuid4()))
    assert uow.caller == factory.opened[0]


async def test_writes_are_invisible_until_committed(factory: InMemoryUnitOfWorkFactory) -> None:
    user_id = uuid.uuid4()
    async with factory(Caller(user_id)) as uow:
        await uow.users.upsert(User(user_id, "a@example.test"))
        assert await uow.users.get(user_id) is not None
        assert user_id not in factory.committed.users
        await uow.commit()
    assert factory.committed.users[user_id].email == "a@example.test"


async def test_leaving_without_commit_rolls_back(factory: InMemoryUnitOfWorkFactory) -> None:
    user_id = uuid.uuid4()
    async with factory(Caller(user_id)) as uow:
        await uow.users.upsert(User(user_id, "a@example.test"))
    assert factory.committed.users == {}
    async with factory(Caller(user_id)) as uow:
        assert await uow.users.get(user_id) is None


async def test_an_error_rolls_back(factory: InMemoryUnitOfWorkFactory) -> None:
    user_id = uuid.uuid4()
    uow = factory(Caller(user_id))

    async def fail_midway() -> None:
        async with uow:
            await uow.users.upsert(User(user_id, None))
            raise ConflictError("boom")

    with pytest.raises(ConflictError, match="boom"):
        await fail_midway()
    assert factory.committed.users == {}
    assert uow.commits == 0


async def test_writes_after_commit_need_another_commit(factory: InMemoryUnitOfWorkFactory) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    async with factory(Caller(first)) as uow:
        await uow.users.upsert(User(first, None))
        await uow.commit()
        await uow.users.upsert(User(second, None))
    assert set(factory.committed.users) == {first}


async def test_repositories_only_work_inside_the_block(factory: InMemoryUnitOfWorkFactory) -> None:
    uow = factory(Caller(uuid.uuid4()))
    with pytest.raises(RuntimeError, match="async with"):
        await uow.users.get(uuid.uuid4())
    async with uow:
        pass
    with pytest.raises(RuntimeError, match="async with"):
        await uow.commit()


async def test_upsert_updates_only_the_email(factory: InMemoryUnitOfWorkFactory) -> None:
    user_id = uuid.uuid4()
    async with factory(Caller(user_id)) as uow:
        await uow.users.upsert(User(user_id, "old@example.test"))
        created = await uow.users.get(user_id)
        await uow.users.upsert(User(user_id, "new@example.test"))
        updated = await uow.users.get(user_id)
    assert created is not None
    assert updated == User(user_id, "new@example.test", created.created_at)
    assert created.created_at is not None


async def test_adding_a_member_twice_conflicts(factory: InMemoryUnitOfWorkFactory) -> None:
    owner = uuid.uuid4()
    workspace_id = _seed(factory.committed, (owner, Role.OWNER))
    async with factory(Caller(owner, workspace_id)) as uow:
        with pytest.raises(ConflictError):
            await uow.memberships.add(Membership(workspace_id, owner, Role.VIEWER))


async def test_adding_an_unknown_user_is_not_found(factory: InMemoryUnitOfWorkFactory) -> None:
    owner = uuid.uuid4()
    workspace_id = _seed(factory.committed, (owner, Role.OWNER))
    async with factory(Caller(owner, workspace_id)) as uow:
        with pytest.raises(NotFoundError):
            await uow.memberships.add(Membership(workspace_id, uuid.uuid4(), Role.VIEWER))


async def test_a_workspace_needs_a_known_creator(factory: InMemoryUnitOfWorkFactory) -> None:
    stranger = uuid.uuid4()
    async with factory(Caller(stranger)) as uow:
        with pytest.raises(IntegrityViolation):
            await uow.workspaces.add(Workspace(uuid.uuid4(), "W", created_by=stranger))


async def test_members_are_read_with_their_email(factory: InMemoryUnitOfWorkFactory) -> None:
    owner = uuid.uuid4()
    workspace_id = _seed(factory.committed, (owner, Role.OWNER))
    async with factory(Caller(owner, workspace_id)) as uow:
        member = await uow.memberships.get(workspace_id, owner)
        listed = await uow.memberships.list(workspace_id, None, 10)
    assert member is not None
    assert member.email == factory.committed.users[owner].email
    assert listed == [member]


@pytest.mark.parametrize("change", ["demote", "remove"])
async def test_the_last_owner_stays(factory: InMemoryUnitOfWorkFactory, change: str) -> None:
    owner, admin = uuid.uuid4(), uuid.uuid4()
    workspace_id = _seed(factory.committed, (owner, Role.OWNER), (admin, Role.ADMIN))
    async with factory(Caller(owner, workspace_id)) as uow:
        attempt = (
            uow.memberships.set_role(workspace_id, owner, Role.ADMIN)
            if change == "demote"
            else uow.memberships.remove(workspace_id, owner)
        )
        with pytest.raises(LastOwnerError):
            await attempt
        assert await uow.memberships.role_of(workspace_id, owner) is Role.OWNER


async def test_one_of_two_owners_may_go(factory: InMemoryUnitOfWorkFactory) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    workspace_id = _seed(factory.committed, (first, Role.OWNER), (second, Role.OWNER))
    async with factory(Caller(first, workspace_id)) as uow:
        assert await uow.memberships.remove(workspace_id, first) is True
        with pytest.raises(LastOwnerError):
            await uow.memberships.set_role(workspace_id, second, Role.VIEWER)


async def test_deleting_a_workspace_removes_its_memberships(
    factory: InMemoryUnitOfWorkFactory,
) -> None:
    owner = uuid.uuid4()
    doomed = _seed(factory.committed, (owner, Role.OWNER), (uuid.uuid4(), Role.OWNER))
    kept = _seed(factory.committed, (owner, Role.OWNER))
    async with factory(Caller(owner, doomed)) as uow:
        assert await uow.workspaces.delete(doomed) is True
        assert await uow.workspaces.delete(doomed) is False
        await uow.commit()
    assert doomed not in factory.committed.workspaces
    assert [key[0] for key in factory.committed.memberships] == [kept]


async def test_lists_are_ordered_and_start_after_the_cursor(
    factory: InMemoryUnitOfWorkFactory,
) -> None:
    user_id = uuid.uuid4()
    workspaces = sorted(_seed(factory.committed, (user_id, Role.OWNER)) for _ in range(4))
    _seed(factory.committed, (uuid.uuid4(), Role.OWNER))  # someone else's
    async with factory(Caller(user_id)) as uow:
        everything = await uow.workspaces.list_for_user(user_id, None, None)
        rest = await uow.workspaces.list_for_user(user_id, workspaces[0], 2)
    assert [access.workspace.id for access in everything] == workspaces
    assert [access.workspace.id for access in rest] == workspaces[1:3]


def test_the_fake_clock_stands_still_until_advanced() -> None:
    clock = FakeClock()
    now, monotonic = clock.now(), clock.monotonic()
    assert now.tzinfo is UTC
    assert (clock.now(), clock.monotonic()) == (now, monotonic)
    clock.advance(1.5)
    assert clock.now() - now == timedelta(seconds=1.5)
    assert clock.monotonic() - monotonic == 1.5


def _event(task_id: UUID, type_: EventType, workspace_id: UUID = WORKSPACE) -> TaskEvent:
    return TaskEvent(workspace_id, task_id, type_)


async def test_the_bus_drops_a_second_ending_until_a_replay_reopens_the_stream() -> None:
    bus, task_id = InMemoryEventBus(), uuid.uuid4()
    await bus.publish(_event(task_id, EventType.FAILED), _event(task_id, EventType.CANCELLED))
    await bus.publish(_event(task_id, EventType.REPLAYED), _event(task_id, EventType.SUCCEEDED))
    await bus.publish(_event(task_id, EventType.FAILED))
    stream = bus.streams[StreamRef(WORKSPACE, task_id)]
    assert [stored.event.type for stored in stream] == [
        EventType.FAILED,
        EventType.REPLAYED,
        EventType.SUCCEEDED,
    ]
    assert bus.streams[StreamRef(WORKSPACE)] == stream


async def test_a_subscription_resumes_after_its_position_and_follows_live_events() -> None:
    bus, task_id = InMemoryEventBus(), uuid.uuid4()
    await bus.publish(_event(task_id, EventType.QUEUED), _event(task_id, EventType.STARTED))
    first = bus.streams[StreamRef(WORKSPACE, task_id)][0]
    async with bus.subscribe(StreamRef(WORKSPACE, task_id), first.id) as subscription:
        assert [e.event.type for e in await subscription.batch(1)] == [EventType.STARTED]
        assert await subscription.batch(0.01) == []
        waiting = asyncio.ensure_future(subscription.next(5))
        await bus.publish(_event(task_id, EventType.SUCCEEDED))
        live = await waiting
        assert live is not None
        assert live.event.type is EventType.SUCCEEDED


async def test_a_workspace_subscription_from_none_starts_now() -> None:
    bus, task_id = InMemoryEventBus(), uuid.uuid4()
    await bus.publish(_event(task_id, EventType.QUEUED))
    async with bus.subscribe(StreamRef(WORKSPACE), None) as subscription:
        assert await subscription.next(0.01) is None
        await bus.publish(_event(task_id, EventType.STARTED))
        started = await subscription.next(1)
        assert started is not None
        assert started.event.type is EventType.STARTED


async def test_the_queue_keeps_one_job_per_task_and_attempt() -> None:
    queue, ref = InMemoryJobQueue(), TaskRef(WORKSPACE, uuid.uuid4(), uuid.uuid4())
    first = Dispatch(ref, 1, 0, 0, TaskKind.GENERATE)
    await queue.enqueue(first, first, Dispatch(ref, 1, 5, 0, TaskKind.GENERATE))
    await queue.enqueue(Dispatch(ref, 2, 0, 0, TaskKind.GENERATE))
    assert queue.jobs == {(ref.task_id, 1): first, (ref.task_id, 2): queue.jobs[ref.task_id, 2]}
    assert (await queue.counts())["waiting"] == 2


async def test_the_scripted_model_streams_its_tokens_then_its_error() -> None:
    model = ScriptedModel("a", "b", error=TransientModelError("overloaded"))
    tokens: list[str] = []

    async def read() -> None:
        async for token in model.stream("system", "prompt"):
            tokens.append(token)

    with pytest.raises(TransientModelError):
        await read()
    assert tokens == ["a", "b"]
    assert model.prompts == [("system", "prompt")]


async def test_task_states_are_guarded_by_status_and_attempt() -> None:
    factory, clock = InMemoryUnitOfWorkFactory(), FakeClock()
    states = InMemoryTaskStates(factory.committed, clock)
    user_id = uuid.uuid4()
    task = Task(WORKSPACE, uuid.uuid4(), TaskKind.GENERATE, TaskStatus.QUEUED, {}, user_id)
    async with factory(Caller(user_id, WORKSPACE)) as uow:
        assert await uow.tasks.add(task, None, None) is not None
        await uow.commit()
    ref = TaskRef(WORKSPACE, task.id, user_id)
    assert await states.claim(ref, max_running=0, lease_s=30) is ClaimRefused.BUSY
    claim = await states.claim(ref, max_running=1, lease_s=30)
    assert isinstance(claim, Claim)
    assert claim.attempt == 1
    assert await states.claim(ref, 1, 30) is ClaimRefused.NOTHING  # running already
    assert await states.heartbeat(ref, 2, 30, 10) is Lease.LOST  # not this attempt
    assert not await states.finish(ref, 2, TaskStatus.SUCCEEDED)
    assert await states.finish(ref, 1, TaskStatus.FAILED, error="boom")
    assert not await states.finish(ref, 1, TaskStatus.SUCCEEDED)  # a duplicate delivery
    replayed = await states.replay(ref, 1)
    assert replayed is not None
    assert (replayed.status, replayed.budget_from) == (TaskStatus.QUEUED, 1)
    assert await states.replay(ref, 1) is None
    outcomes = [line.outcome for line in factory.committed.tasks[task.id].history]
    assert outcomes == ["started", "failed", "replayed"]
