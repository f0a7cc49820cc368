"""Multi-step writes are atomic, and "a workspace keeps at least one owner"
holds under concurrency: both enforced by Postgres, tested against it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.errors import sqlstate
from adapters.postgres.uow import PgUnitOfWork, PgUnitOfWorkFactory, enter_tenant
from application.members import ChangeMemberRole, RemoveMember
from application.workspaces import CreateWorkspace
from domain.entities import Caller, Membership, Role
from domain.errors import LastOwnerError, PermissionDeniedError
from domain.ports import Cache
from tests.conftest import People

ROUNDS = 10


async def _owners(owner_engine: AsyncEngine, workspace: uuid.UUID) -> int:
    async with owner_engine.connect() as conn:
        return int(
            await conn.scalar(
                sa.text(
                    "select count(*) from memberships where workspace_id = :w and role = 'owner'"
                ),
                {"w": workspace},
            )
            or 0
        )


async def test_two_owners_demoting_each_other_at_once_leave_one(
    engine: AsyncEngine, owner_engine: AsyncEngine, people: People
) -> None:
    """Deterministic interleaving: both UPDATEs run before either commits."""
    first = await people.new()
    workspace = await people.workspace(first)
    second = await people.join(workspace, first, "owner")
    demote = "update memberships set role = 'admin' where workspace_id = :w and user_id = :u"
    async with engine.connect() as one, engine.connect() as two:
        await one.begin()
        await enter_tenant(one, Caller(first.id, workspace))
        await one.execute(sa.text(demote), {"w": workspace, "u": second.id})
        await two.begin()
        await enter_tenant(two, Caller(second.id, workspace))
        blocked = asyncio.create_task(two.execute(sa.text(demote), {"w": workspace, "u": first.id}))
        await asyncio.sleep(0.3)
        assert not blocked.done(), "the second demotion must wait for the first"
        await one.commit()
        with pytest.raises(DBAPIError) as refused:
            await blocked
        assert sqlstate(refused.value) == ("23514", "workspace_keeps_an_owner")
        await two.rollback()
    assert await _owners(owner_engine, workspace) == 1


@pytest.mark.parametrize("action", ["demote", "leave"])
async def test_concurrent_owner_changes_never_leave_zero_owners(
    engine: AsyncEngine, owner_engine: AsyncEngine, people: People, cache: Cache, action: str
) -> None:
    factory = PgUnitOfWorkFactory(engine)
    for _ in range(ROUNDS):
        first = await people.new()
        workspace = await people.workspace(first)
        second = await people.join(workspace, first, "owner")

        async def change(
            actor: uuid.UUID, target: uuid.UUID, workspace: uuid.UUID = workspace
        ) -> None:
            uow = factory(Caller(actor, workspace))
            if action == "demote":
                await ChangeMemberRole(uow, cache).execute(target, Role.MEMBER)
            else:
                await RemoveMember(uow, cache).execute(actor)

        results = await asyncio.gather(
            change(first.id, second.id), change(second.id, first.id), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        # The loser either hits the owner rule, or finds it was demoted first.
        assert all(isinstance(f, LastOwnerError | PermissionDeniedError) for f in failures), (
            failures
        )
        assert len(failures) == 1, results
        assert await _owners(owner_engine, workspace) == 1


class _DemotedMidway(PgUnitOfWork):
    """Runs `meanwhile` (another committed transaction) just before the role change's write."""

    def __init__(
        self, engine: AsyncEngine, caller: Caller, meanwhile: Callable[[], Awaitable[None]]
    ):
        super().__init__(engine, caller)
        self._meanwhile = meanwhile

    async def __aenter__(self) -> _DemotedMidway:
        await super().__aenter__()
        write, meanwhile = self.memberships.set_role, self._meanwhile

        async def set_role(
            workspace_id: uuid.UUID, user_id: uuid.UUID, role: Role
        ) -> Membership | None:
            await meanwhile()
            return await write(workspace_id, user_id, role)

        self.memberships.set_role = set_role  # type: ignore[method-assign]
        return self


async def test_an_owner_demoted_between_check_and_write_is_refused_not_told_not_found(
    engine: AsyncEngine, people: People, cache: Cache
) -> None:
    """The interleaving behind a flaky CI run: the caller's checks pass, then
    the other owner demotes the caller and commits, then the caller's write
    matches no row (row-level security hides it now). The answer must be the
    truth, a refusal, not "member not found"."""
    first = await people.new()
    workspace = await people.workspace(first)
    second = await people.join(workspace, first, "owner")

    async def second_demotes_first() -> None:
        await ChangeMemberRole(PgUnitOfWork(engine, Caller(second.id, workspace)), cache).execute(
            first.id, Role.MEMBER
        )

    uow = _DemotedMidway(engine, Caller(first.id, workspace), second_demotes_first)
    with pytest.raises(PermissionDeniedError):
        await ChangeMemberRole(uow, cache).execute(second.id, Role.MEMBER)


class _FailingMemberships:
    """Lets the workspace row be written, then fails before the owner's membership."""

    async def add(self, membership: Membership) -> None:
        raise ConnectionResetError("injected failure between the two steps")


class _FailAfterFirstStep(PgUnitOfWork):
    async def __aenter__(self) -> _FailAfterFirstStep:
        await super().__aenter__()
        self.memberships = _FailingMemberships()  # type: ignore[assignment]
        return self


async def test_workspace_and_owner_are_created_together_or_not_at_all(
    engine: AsyncEngine, owner_engine: AsyncEngine, people: People
) -> None:
    user = await people.new()
    workspace_id = uuid.uuid4()
    use_case = CreateWorkspace(_FailAfterFirstStep(engine, Caller(user.id)), lambda: workspace_id)
    with pytest.raises(ConnectionResetError):
        await use_case.execute("half-made")
    async with owner_engine.connect() as conn:
        found = await conn.scalar(
            sa.text("select count(*) from workspaces where id = :w"), {"w": workspace_id}
        )
    assert found == 0

    created = await CreateWorkspace(
        PgUnitOfWork(engine, Caller(user.id)), lambda: workspace_id
    ).execute("whole")
    assert created.role is Role.OWNER
    assert await _owners(owner_engine, workspace_id) == 1


async def test_deleting_a_workspace_removes_its_last_owner_too(
    engine: AsyncEngine, owner_engine: AsyncEngine, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    await people.join(workspace, owner, "viewer")
    async with PgUnitOfWork(engine, Caller(owner.id, workspace)) as uow:
        assert await uow.workspaces.delete(workspace)
        await uow.commit()
    async with owner_engine.connect() as conn:
        left = await conn.scalar(
            sa.text("select count(*) from memberships where workspace_id = :w"), {"w": workspace}
        )
    assert left == 0
