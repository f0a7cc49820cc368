"""The application's use cases over the in-memory fakes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from uuid import UUID

import pytest

from application.members import AddMember, ChangeMemberRole, ListMembers, RemoveMember
from application.pagination import encode_cursor
from application.profiles import GetMe, RegisterCaller
from application.workspaces import (
    MAX_NAME_LENGTH,
    CreateWorkspace,
    DeleteWorkspace,
    GetWorkspace,
    ListWorkspaces,
    RenameWorkspace,
)
from domain.entities import Caller, Membership, Role, User, Workspace, WorkspaceAccess
from domain.errors import (
    ConflictError,
    InvalidInputError,
    LastOwnerError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from domain.ports import UnitOfWork
from tests.fakes import InMemoryCache, InMemoryUnitOfWork, InMemoryUnitOfWorkFactory, Tables

OWNER, ADMIN, MEMBER, VIEWER = Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER
BELOW_ADMIN = [MEMBER, VIEWER]


@dataclass
class World:
    """Committed rows to start from, and units of work over them."""

    factory: InMemoryUnitOfWorkFactory = field(default_factory=InMemoryUnitOfWorkFactory)
    cache: InMemoryCache = field(default_factory=InMemoryCache)

    @property
    def db(self) -> Tables:
        return self.factory.committed

    def user(self, email: str | None = None) -> UUID:
        user_id = uuid.uuid4()
        self.db.users[user_id] = User(user_id, email or f"{user_id.hex[:8]}@example.test")
        return user_id

    def workspace(self, name: str = "Acme") -> tuple[UUID, UUID]:
        """A workspace and its owner."""
        owner = self.user()
        workspace_id = uuid.uuid4()
        self.db.workspaces[workspace_id] = Workspace(workspace_id, name, created_by=owner)
        self.db.memberships[workspace_id, owner] = Membership(workspace_id, owner, OWNER)
        return workspace_id, owner

    def join(self, workspace_id: UUID, role: Role) -> UUID:
        user_id = self.user()
        self.db.memberships[workspace_id, user_id] = Membership(workspace_id, user_id, role)
        return user_id

    def role(self, workspace_id: UUID, user_id: UUID) -> Role | None:
        membership = self.db.memberships.get((workspace_id, user_id))
        return membership.role if membership else None

    def uow(self, user_id: UUID, workspace_id: UUID | None = None) -> InMemoryUnitOfWork:
        return self.factory(Caller(user_id, workspace_id))


@pytest.fixture
def world() -> World:
    return World()


def _ids(*values: UUID) -> Iterator[UUID]:
    return iter(values)


# --- CreateWorkspace ---------------------------------------------------------


async def test_create_workspace_makes_the_caller_its_owner(world: World) -> None:
    creator, new_id = world.user(), uuid.uuid4()
    uow = world.uow(creator)

    access = await CreateWorkspace(uow, lambda: new_id).execute("  Acme Inc  ")

    assert access.role is OWNER
    assert access.workspace.id == new_id
    assert access.workspace.name == "Acme Inc"
    assert access.workspace.created_by == creator
    assert world.db.workspaces[new_id].name == "Acme Inc"
    assert world.role(new_id, creator) is OWNER
    assert list(world.db.memberships) == [(new_id, creator)]
    assert uow.commits == 1


async def test_create_workspace_returns_the_stored_row(world: World) -> None:
    creator = world.user()
    access = await CreateWorkspace(world.uow(creator), uuid.uuid4).execute("Acme")
    assert access.workspace.created_at is not None
    assert access.workspace == world.db.workspaces[access.workspace.id]


async def test_create_workspace_uses_a_fresh_id_each_time(world: World) -> None:
    creator = world.user()
    ids = _ids(uuid.uuid4(), uuid.uuid4())
    first = await CreateWorkspace(world.uow(creator), lambda: next(ids)).execute("One")
    second = await CreateWorkspace(world.uow(creator), lambda: next(ids)).execute("Two")
    assert first.workspace.id != second.workspace.id
    assert {w.name for w in world.db.workspaces.values()} == {"One", "Two"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("   \t\n ", id="blank"),
        pytest.param("x" * (MAX_NAME_LENGTH + 1), id="too long"),
        pytest.param(" " + "x" * (MAX_NAME_LENGTH + 1) + " ", id="too long once trimmed"),
    ],
)
async def test_create_workspace_rejects_bad_names(world: World, name: str) -> None:
    creator = world.user()
    with pytest.raises(InvalidInputError, match="name must be 1 to 200 characters"):
        await CreateWorkspace(world.uow(creator), uuid.uuid4).execute(name)
    assert world.db.workspaces == {}
    assert world.db.memberships == {}


@pytest.mark.parametrize("name", ["x", "x" * MAX_NAME_LENGTH, "  " + "y" * MAX_NAME_LENGTH + "  "])
async def test_create_workspace_accepts_names_at_the_bounds(world: World, name: str) -> None:
    access = await CreateWorkspace(world.uow(world.user()), uuid.uuid4).execute(name)
    assert access.workspace.name == name.strip()


# --- GetWorkspace / ListWorkspaces ---------------------------------------------


@pytest.mark.parametrize("role", list(Role))
async def test_get_workspace_shows_the_callers_role(world: World, role: Role) -> None:
    workspace_id, owner = world.workspace("Acme")
    user_id = owner if role is OWNER else world.join(workspace_id, role)
    access = await GetWorkspace(world.uow(user_id, workspace_id)).execute()
    assert access == WorkspaceAccess(world.db.workspaces[workspace_id], role)


async def test_get_workspace_hides_it_from_non_members(world: World) -> None:
    workspace_id, _ = world.workspace()
    with pytest.raises(NotFoundError):
        await GetWorkspace(world.uow(world.user(), workspace_id)).execute()


async def test_workspace_use_cases_need_a_bound_workspace(world: World) -> None:
    _, owner = world.workspace()
    with pytest.raises(NotFoundError):
        await GetWorkspace(world.uow(owner, None)).execute()


async def test_list_workspaces_pages_through_the_callers_workspaces(world: World) -> None:
    user_id = world.user()
    mine = []
    for index in range(5):
        workspace_id, _ = world.workspace(f"W{index}")
        world.db.memberships[workspace_id, user_id] = Membership(workspace_id, user_id, VIEWER)
        mine.append(workspace_id)
    world.workspace("not mine")

    first = await ListWorkspaces(world.uow(user_id)).execute(3, None)
    assert [a.workspace.id for a in first.items] == sorted(mine)[:3]
    assert first.next_cursor == encode_cursor(sorted(mine)[2])
    rest = await ListWorkspaces(world.uow(user_id)).execute(3, first.next_cursor)
    assert [a.workspace.id for a in rest.items] == sorted(mine)[3:]
    assert rest.next_cursor is None
    assert {a.role for a in first.items + rest.items} == {VIEWER}


async def test_list_workspaces_validates_limit_and_cursor(world: World) -> None:
    user_id = world.user()
    with pytest.raises(InvalidInputError):
        await ListWorkspaces(world.uow(user_id)).execute(0, None)
    with pytest.raises(InvalidInputError):
        await ListWorkspaces(world.uow(user_id)).execute(10, "garbage!")


# --- RenameWorkspace -----------------------------------------------------------


@pytest.mark.parametrize("role", BELOW_ADMIN)
async def test_rename_is_denied_below_admin(world: World, role: Role) -> None:
    workspace_id, _ = world.workspace("Acme")
    user_id = world.join(workspace_id, role)
    uow = world.uow(user_id, workspace_id)
    with pytest.raises(PermissionDeniedError, match="renaming a workspace needs the admin role"):
        await RenameWorkspace(uow).execute("Hijacked")
    assert world.db.workspaces[workspace_id].name == "Acme"
    assert uow.commits == 0


@pytest.mark.parametrize("role", [ADMIN, OWNER])
async def test_admins_and_owners_rename(world: World, role: Role) -> None:
    workspace_id, owner = world.workspace("Acme")
    user_id = owner if role is OWNER else world.join(workspace_id, role)
    access = await RenameWorkspace(world.uow(user_id, workspace_id)).execute("  Acme 2 ")
    assert access.workspace.name == "Acme 2"
    assert access.role is role
    assert world.db.workspaces[workspace_id].name == "Acme 2"


async def test_rename_hides_the_workspace_from_non_members(world: World) -> None:
    workspace_id, _ = world.workspace("Acme")
    with pytest.raises(NotFoundError):
        await RenameWorkspace(world.uow(world.user(), workspace_id)).execute("Mine now")
    assert world.db.workspaces[workspace_id].name == "Acme"


async def test_rename_validates_the_name(world: World) -> None:
    workspace_id, owner = world.workspace("Acme")
    with pytest.raises(InvalidInputError):
        await RenameWorkspace(world.uow(owner, workspace_id)).execute("  ")
    assert world.db.workspaces[workspace_id].name == "Acme"


# --- DeleteWorkspace -----------------------------------------------------------


async def test_the_owner_deletes_the_workspace_and_its_memberships(world: World) -> None:
    workspace_id, owner = world.workspace()
    world.join(workspace_id, ADMIN)
    other_workspace, _ = world.workspace()
    await DeleteWorkspace(world.uow(owner, workspace_id), world.cache).execute()
    assert list(world.db.workspaces) == [other_workspace]
    assert all(key[0] == other_workspace for key in world.db.memberships)


@pytest.mark.parametrize("role", [ADMIN, MEMBER, VIEWER])
async def test_only_an_owner_deletes(world: World, role: Role) -> None:
    workspace_id, _ = world.workspace()
    user_id = world.join(workspace_id, role)
    with pytest.raises(PermissionDeniedError, match="needs the owner role"):
        await DeleteWorkspace(world.uow(user_id, workspace_id), world.cache).execute()
    assert workspace_id in world.db.workspaces
    assert world.role(workspace_id, user_id) is role


async def test_delete_hides_the_workspace_from_non_members(world: World) -> None:
    workspace_id, _ = world.workspace()
    with pytest.raises(NotFoundError):
        await DeleteWorkspace(world.uow(world.user(), workspace_id), world.cache).execute()
    assert workspace_id in world.db.workspaces


# --- AddMember -----------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
async def test_an_owner_adds_any_role(world: World, role: Role) -> None:
    workspace_id, owner = world.workspace()
    newcomer = world.user("new@example.test")
    added = await AddMember(world.uow(owner, workspace_id), world.cache).execute(newcomer, role)
    assert (added.workspace_id, added.user_id, added.role) == (workspace_id, newcomer, role)
    assert added.email == "new@example.test"
    assert world.role(workspace_id, newcomer) is role


@pytest.mark.parametrize("role", [ADMIN, MEMBER, VIEWER])
async def test_an_admin_adds_up_to_admin(world: World, role: Role) -> None:
    workspace_id, _ = world.workspace()
    admin, newcomer = world.join(workspace_id, ADMIN), world.user()
    added = await AddMember(world.uow(admin, workspace_id), world.cache).execute(newcomer, role)
    assert added.role is role
    assert world.role(workspace_id, newcomer) is role


async def test_an_admin_cannot_add_an_owner(world: World) -> None:
    workspace_id, _ = world.workspace()
    admin, newcomer = world.join(workspace_id, ADMIN), world.user()
    with pytest.raises(PermissionDeniedError, match="only an owner"):
        await AddMember(world.uow(admin, workspace_id), world.cache).execute(newcomer, OWNER)
    assert world.role(workspace_id, newcomer) is None


@pytest.mark.parametrize("actor", BELOW_ADMIN)
@pytest.mark.parametrize("role", list(Role))
async def test_members_and_viewers_cannot_add(world: World, actor: Role, role: Role) -> None:
    workspace_id, _ = world.workspace()
    user_id, newcomer = world.join(workspace_id, actor), world.user()
    with pytest.raises(PermissionDeniedError):
        await AddMember(world.uow(user_id, workspace_id), world.cache).execute(newcomer, role)
    assert world.role(workspace_id, newcomer) is None


async def test_adding_an_existing_member_conflicts(world: World) -> None:
    workspace_id, owner = world.workspace()
    viewer = world.join(workspace_id, VIEWER)
    with pytest.raises(ConflictError):
        await AddMember(world.uow(owner, workspace_id), world.cache).execute(viewer, ADMIN)
    assert world.role(workspace_id, viewer) is VIEWER


async def test_adding_a_user_who_never_signed_in_is_not_found(world: World) -> None:
    workspace_id, owner = world.workspace()
    stranger = uuid.uuid4()
    with pytest.raises(NotFoundError, match="no such user"):
        await AddMember(world.uow(owner, workspace_id), world.cache).execute(stranger, VIEWER)
    assert world.role(workspace_id, stranger) is None


async def test_a_non_member_cannot_add_and_does_not_learn_the_workspace_exists(
    world: World,
) -> None:
    workspace_id, _ = world.workspace()
    outsider, newcomer = world.user(), world.user()
    with pytest.raises(NotFoundError, match="workspace not found"):
        await AddMember(world.uow(outsider, workspace_id), world.cache).execute(newcomer, VIEWER)
    assert world.role(workspace_id, newcomer) is None


# --- ChangeMemberRole ----------------------------------------------------------


@pytest.mark.parametrize(("current", "new"), [(MEMBER, OWNER), (ADMIN, VIEWER), (VIEWER, ADMIN)])
async def test_an_owner_changes_any_role(world: World, current: Role, new: Role) -> None:
    workspace_id, owner = world.workspace()
    target = world.join(workspace_id, current)
    changed = await ChangeMemberRole(world.uow(owner, workspace_id), world.cache).execute(
        target, new
    )
    assert (changed.user_id, changed.role) == (target, new)
    assert changed.email == world.db.users[target].email
    assert world.role(workspace_id, target) is new


async def test_an_owner_demotes_another_owner(world: World) -> None:
    workspace_id, owner = world.workspace()
    other_owner = world.join(workspace_id, OWNER)
    await ChangeMemberRole(world.uow(owner, workspace_id), world.cache).execute(other_owner, MEMBER)
    assert world.role(workspace_id, other_owner) is MEMBER


@pytest.mark.parametrize(("current", "new"), [(MEMBER, ADMIN), (ADMIN, VIEWER), (VIEWER, MEMBER)])
async def test_an_admin_changes_roles_below_owner(world: World, current: Role, new: Role) -> None:
    workspace_id, _ = world.workspace()
    admin, target = world.join(workspace_id, ADMIN), world.join(workspace_id, current)
    changed = await ChangeMemberRole(world.uow(admin, workspace_id), world.cache).execute(
        target, new
    )
    assert changed.role is new
    assert world.role(workspace_id, target) is new


async def test_an_admin_cannot_promote_to_owner(world: World) -> None:
    workspace_id, _ = world.workspace()
    admin, target = world.join(workspace_id, ADMIN), world.join(workspace_id, MEMBER)
    with pytest.raises(PermissionDeniedError, match="only an owner"):
        await ChangeMemberRole(world.uow(admin, workspace_id), world.cache).execute(target, OWNER)
    assert world.role(workspace_id, target) is MEMBER


async def test_an_admin_cannot_promote_themselves_to_owner(world: World) -> None:
    workspace_id, _ = world.workspace()
    admin = world.join(workspace_id, ADMIN)
    with pytest.raises(PermissionDeniedError):
        await ChangeMemberRole(world.uow(admin, workspace_id), world.cache).execute(admin, OWNER)
    assert world.role(workspace_id, admin) is ADMIN


async def test_an_admin_cannot_demote_an_owner(world: World) -> None:
    workspace_id, owner = world.workspace()
    world.join(workspace_id, OWNER)  # so that only the rule, not the last owner, stops it
    admin = world.join(workspace_id, ADMIN)
    with pytest.raises(PermissionDeniedError, match="only an owner"):
        await ChangeMemberRole(world.uow(admin, workspace_id), world.cache).execute(owner, VIEWER)
    assert world.role(workspace_id, owner) is OWNER


@pytest.mark.parametrize("actor", BELOW_ADMIN)
async def test_members_and_viewers_cannot_change_roles(world: World, actor: Role) -> None:
    workspace_id, _ = world.workspace()
    user_id, target = world.join(workspace_id, actor), world.join(workspace_id, VIEWER)
    with pytest.raises(PermissionDeniedError, match="needs the admin role"):
        await ChangeMemberRole(world.uow(user_id, workspace_id), world.cache).execute(
            target, MEMBER
        )
    with pytest.raises(PermissionDeniedError):
        await ChangeMemberRole(world.uow(user_id, workspace_id), world.cache).execute(
            user_id, ADMIN
        )
    assert world.role(workspace_id, target) is VIEWER
    assert world.role(workspace_id, user_id) is actor


async def test_the_last_owner_cannot_step_down(world: World) -> None:
    workspace_id, owner = world.workspace()
    uow = world.uow(owner, workspace_id)
    with pytest.raises(LastOwnerError):
        await ChangeMemberRole(uow, world.cache).execute(owner, ADMIN)
    assert world.role(workspace_id, owner) is OWNER
    assert uow.commits == 0


async def test_an_owner_steps_down_when_another_owner_remains(world: World) -> None:
    workspace_id, owner = world.workspace()
    world.join(workspace_id, OWNER)
    await ChangeMemberRole(world.uow(owner, workspace_id), world.cache).execute(owner, ADMIN)
    assert world.role(workspace_id, owner) is ADMIN


async def test_changing_a_non_member_is_not_found(world: World) -> None:
    workspace_id, owner = world.workspace()
    outsider = world.user()
    with pytest.raises(NotFoundError, match="member not found"):
        await ChangeMemberRole(world.uow(owner, workspace_id), world.cache).execute(
            outsider, VIEWER
        )
    assert world.role(workspace_id, outsider) is None


async def test_a_non_member_cannot_change_roles(world: World) -> None:
    workspace_id, owner = world.workspace()
    with pytest.raises(NotFoundError, match="workspace not found"):
        await ChangeMemberRole(world.uow(world.user(), workspace_id), world.cache).execute(
            owner, VIEWER
        )
    assert world.role(workspace_id, owner) is OWNER


# --- RemoveMember --------------------------------------------------------------


@pytest.mark.parametrize("role", [ADMIN, MEMBER, VIEWER])
async def test_anyone_may_leave(world: World, role: Role) -> None:
    workspace_id, _ = world.workspace()
    user_id = world.join(workspace_id, role)
    await RemoveMember(world.uow(user_id, workspace_id), world.cache).execute(user_id)
    assert world.role(workspace_id, user_id) is None


async def test_an_owner_may_leave_when_another_owner_remains(world: World) -> None:
    workspace_id, owner = world.workspace()
    other_owner = world.join(workspace_id, OWNER)
    await RemoveMember(world.uow(owner, workspace_id), world.cache).execute(owner)
    assert world.role(workspace_id, owner) is None
    assert world.role(workspace_id, other_owner) is OWNER


async def test_the_last_owner_cannot_leave(world: World) -> None:
    workspace_id, owner = world.workspace()
    world.join(workspace_id, ADMIN)
    with pytest.raises(LastOwnerError):
        await RemoveMember(world.uow(owner, workspace_id), world.cache).execute(owner)
    assert world.role(workspace_id, owner) is OWNER


@pytest.mark.parametrize("target", [OWNER, ADMIN, MEMBER, VIEWER])
async def test_an_owner_removes_anyone(world: World, target: Role) -> None:
    workspace_id, owner = world.workspace()
    user_id = world.join(workspace_id, target)
    await RemoveMember(world.uow(owner, workspace_id), world.cache).execute(user_id)
    assert world.role(workspace_id, user_id) is None
    assert world.role(workspace_id, owner) is OWNER


@pytest.mark.parametrize("target", [ADMIN, MEMBER, VIEWER])
async def test_an_admin_removes_non_owners(world: World, target: Role) -> None:
    workspace_id, _ = world.workspace()
    admin, user_id = world.join(workspace_id, ADMIN), world.join(workspace_id, target)
    await RemoveMember(world.uow(admin, workspace_id), world.cache).execute(user_id)
    assert world.role(workspace_id, user_id) is None


async def test_an_admin_cannot_remove_an_owner(world: World) -> None:
    workspace_id, owner = world.workspace()
    world.join(workspace_id, OWNER)
    admin = world.join(workspace_id, ADMIN)
    with pytest.raises(PermissionDeniedError, match="only an owner"):
        await RemoveMember(world.uow(admin, workspace_id), world.cache).execute(owner)
    assert world.role(workspace_id, owner) is OWNER


@pytest.mark.parametrize("actor", BELOW_ADMIN)
async def test_members_and_viewers_cannot_remove_others(world: World, actor: Role) -> None:
    workspace_id, _ = world.workspace()
    user_id, target = world.join(workspace_id, actor), world.join(workspace_id, VIEWER)
    with pytest.raises(PermissionDeniedError):
        await RemoveMember(world.uow(user_id, workspace_id), world.cache).execute(target)
    assert world.role(workspace_id, target) is VIEWER


async def test_removing_a_non_member_is_not_found(world: World) -> None:
    workspace_id, owner = world.workspace()
    with pytest.raises(NotFoundError, match="member not found"):
        await RemoveMember(world.uow(owner, workspace_id), world.cache).execute(world.user())


async def test_a_non_member_cannot_remove_anyone(world: World) -> None:
    workspace_id, owner = world.workspace()
    viewer = world.join(workspace_id, VIEWER)
    outsider = world.user()
    for target in (viewer, outsider):
        with pytest.raises(NotFoundError, match="workspace not found"):
            await RemoveMember(world.uow(outsider, workspace_id), world.cache).execute(target)
    assert world.role(workspace_id, viewer) is VIEWER
    assert world.role(workspace_id, owner) is OWNER


# --- ListMembers ---------------------------------------------------------------


async def test_list_members_pages_by_user_id_with_emails(world: World) -> None:
    workspace_id, owner = world.workspace()
    viewer = world.join(workspace_id, VIEWER)
    members = sorted([owner, viewer, world.join(workspace_id, ADMIN)])
    world.workspace()  # another workspace's members stay out

    first = await ListMembers(world.uow(viewer, workspace_id)).execute(2, None)
    rest = await ListMembers(world.uow(viewer, workspace_id)).execute(2, first.next_cursor)

    assert [m.user_id for m in first.items + rest.items] == members
    assert first.next_cursor is not None
    assert rest.next_cursor is None
    assert all(m.email == world.db.users[m.user_id].email for m in first.items + rest.items)


async def test_list_members_hides_the_workspace_from_non_members(world: World) -> None:
    workspace_id, _ = world.workspace()
    with pytest.raises(NotFoundError):
        await ListMembers(world.uow(world.user(), workspace_id)).execute(10, None)


# --- RegisterCaller ------------------------------------------------------------


async def test_register_caller_upserts_the_profile_once(world: World) -> None:
    register = RegisterCaller(world.factory)
    user_id = uuid.uuid4()

    await register.execute(user_id, "a@example.test")
    assert world.factory.opened == [Caller(user_id)]
    assert world.db.users[user_id].email == "a@example.test"

    await register.execute(user_id, "a@example.test")
    await register.execute(user_id, "a@example.test")
    assert len(world.factory.opened) == 1


async def test_register_caller_goes_again_when_the_email_changes(world: World) -> None:
    register = RegisterCaller(world.factory)
    user_id = uuid.uuid4()
    await register.execute(user_id, "a@example.test")
    await register.execute(user_id, "b@example.test")
    assert len(world.factory.opened) == 2
    assert world.db.users[user_id].email == "b@example.test"
    await register.execute(user_id, None)
    assert len(world.factory.opened) == 3
    assert world.db.users[user_id].email is None


async def test_register_caller_remembers_each_user_separately(world: World) -> None:
    register = RegisterCaller(world.factory)
    first, second = uuid.uuid4(), uuid.uuid4()
    await register.execute(first, "same@example.test")
    await register.execute(second, "same@example.test")
    await register.execute(first, "same@example.test")
    assert world.factory.opened == [Caller(first), Caller(second)]
    assert set(world.db.users) == {first, second}


async def test_register_caller_writes_an_email_changed_back(world: World) -> None:
    register = RegisterCaller(world.factory)
    user_id = uuid.uuid4()
    await register.execute(user_id, "a@example.test")
    await register.execute(user_id, "b@example.test")
    await register.execute(user_id, "a@example.test")
    assert world.db.users[user_id].email == "a@example.test"


async def test_register_caller_retries_after_a_failure(world: World) -> None:
    @dataclass
    class FlakyFactory:
        inner: InMemoryUnitOfWorkFactory
        failures: int = 1

        def __call__(self, caller: Caller) -> UnitOfWork:
            if self.failures:
                self.failures -= 1
                return _Unavailable(caller)
            return self.inner(caller)

    register = RegisterCaller(FlakyFactory(world.factory))
    user_id = uuid.uuid4()
    with pytest.raises(UnavailableError):
        await register.execute(user_id, "a@example.test")
    assert user_id not in world.db.users
    await register.execute(user_id, "a@example.test")
    assert world.db.users[user_id].email == "a@example.test"


class _Unavailable(InMemoryUnitOfWork):
    async def __aenter__(self) -> Self:
        raise UnavailableError("the database is unavailable")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise AssertionError("never entered")


async def test_register_caller_forgets_everyone_when_full(world: World) -> None:
    register = RegisterCaller(world.factory)
    register.MAX_REMEMBERED = 2
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for user_id in (first, second, third):
        await register.execute(user_id, None)
    assert len(world.factory.opened) == 3

    await register.execute(third, None)  # remembered after the reset
    assert len(world.factory.opened) == 3
    await register.execute(first, None)  # forgotten by the reset
    assert len(world.factory.opened) == 4


# --- GetMe ---------------------------------------------------------------------


async def test_get_me_returns_the_profile_and_every_membership(world: World) -> None:
    me = world.user("me@example.test")
    owned, _ = world.workspace("Owned")
    world.db.memberships[owned, me] = Membership(owned, me, OWNER)
    viewed, _ = world.workspace("Viewed")
    world.db.memberships[viewed, me] = Membership(viewed, me, VIEWER)
    world.workspace("Someone else's")

    result = await GetMe(world.uow(me)).execute()

    assert result.user == world.db.users[me]
    assert sorted((a.workspace.name, a.role) for a in result.memberships) == [
        ("Owned", OWNER),
        ("Viewed", VIEWER),
    ]
    assert [a.workspace.id for a in result.memberships] == sorted([owned, viewed])


async def test_get_me_without_workspaces(world: World) -> None:
    me = world.user("solo@example.test")
    result = await GetMe(world.uow(me)).execute()
    assert result.user.email == "solo@example.test"
    assert result.memberships == []


async def test_get_me_before_registration_is_not_found(world: World) -> None:
    with pytest.raises(NotFoundError, match="profile not found"):
        await GetMe(world.uow(uuid.uuid4())).execute()
