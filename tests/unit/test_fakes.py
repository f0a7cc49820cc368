"""The in-memory fakes behave like the Postgres adapter where use cases can tell."""

from __future__ import annotations

import uuid
from uuid import UUID

import pytest

from domain.entities import Caller, Membership, Role, User, Workspace
from domain.errors import ConflictError, LastOwnerError, NotFoundError
from domain.ports import UnitOfWorkFactory
from tests.fakes import InMemoryUnitOfWorkFactory, IntegrityViolation, Tables


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
