"""The UI-state use cases and rules, over the in-memory fakes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

import pytest

from application.ui_state import (
    DeleteUIState,
    GetUIState,
    ListUIState,
    PutUIState,
    decode_key_cursor,
    encode_key_cursor,
)
from domain.entities import Caller, Role, Workspace
from domain.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    UnavailableError,
)
from domain.ports import UIStateStore
from domain.ui_state import (
    DEFAULT_QUOTA,
    DEFAULT_TTL_S,
    MAX_KEYS,
    MAX_TTL_S,
    MAX_VALUE_BYTES,
    UIState,
    UIStateQuota,
    check_key,
    check_ttl,
    check_value,
)
from tests.fakes import (
    FakeClock,
    InMemoryCache,
    InMemoryUIStateStore,
    InMemoryUnitOfWork,
    InMemoryUnitOfWorkFactory,
)


@dataclass
class World:
    factory: InMemoryUnitOfWorkFactory = field(default_factory=InMemoryUnitOfWorkFactory)
    cache: InMemoryCache = field(default_factory=InMemoryCache)
    clock: FakeClock = field(default_factory=FakeClock)
    workspace: UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        self.store = InMemoryUIStateStore(self.clock)
        self.owner = self.join(Role.OWNER)
        db = self.factory.committed
        db.workspaces[self.workspace] = Workspace(self.workspace, "Acme", created_by=self.owner)

    def join(self, role: Role) -> UUID:
        return self.factory.committed.add_member(self.workspace, role)

    def _uow(self, user_id: UUID) -> InMemoryUnitOfWork:
        return self.factory(Caller(user_id, self.workspace))

    def put(self, user_id: UUID, quota: UIStateQuota = DEFAULT_QUOTA) -> PutUIState:
        return PutUIState(self._uow(user_id), self.cache, self.store, self.clock, quota)

    def get(self, user_id: UUID) -> GetUIState:
        return GetUIState(self._uow(user_id), self.cache, self.store)

    def delete(self, user_id: UUID) -> DeleteUIState:
        return DeleteUIState(self._uow(user_id), self.cache, self.store)

    def list(self, user_id: UUID) -> ListUIState:
        return ListUIState(self._uow(user_id), self.cache, self.store)


@pytest.fixture
def world() -> World:
    return World()


def test_the_fake_satisfies_the_port() -> None:
    port: UIStateStore = InMemoryUIStateStore(FakeClock())
    assert port is not None


async def test_put_then_get_returns_the_value_as_sent(world: World) -> None:
    now = world.clock.now()
    stored = await world.put(world.owner).execute("panel", b' {"a": 1} ', None)
    assert stored.expires_at.microsecond % 1000 == 0  # the expiry is in whole ms
    assert now - timedelta(milliseconds=1) < stored.expires_at - timedelta(seconds=DEFAULT_TTL_S)
    assert stored.expires_at - timedelta(seconds=DEFAULT_TTL_S) <= now
    assert stored.expires_at == now.replace(microsecond=678_000) + timedelta(seconds=DEFAULT_TTL_S)
    read = await world.get(world.owner).execute("panel")
    assert read == UIState(world.workspace, world.owner, "panel", b' {"a": 1} ', stored.expires_at)


async def test_an_explicit_ttl_sets_the_expiry_and_the_entry_expires(world: World) -> None:
    stored = await world.put(world.owner).execute("k", b"1", 60)
    assert timedelta(seconds=59) < stored.expires_at - world.clock.now() <= timedelta(seconds=60)
    world.clock.advance(59.9)
    assert await world.get(world.owner).execute("k") == stored
    world.clock.advance(1.1)
    with pytest.raises(NotFoundError):
        await world.get(world.owner).execute("k")


@pytest.mark.parametrize("ttl", [0, -5, MAX_TTL_S + 1])
async def test_a_ttl_out_of_range_stores_nothing(world: World, ttl: int) -> None:
    with pytest.raises(InvalidInputError, match="ttl"):
        await world.put(world.owner).execute("k", b"1", ttl)
    assert world.store.entries == {}


async def test_viewers_read_but_do_not_write(world: World) -> None:
    viewer = world.join(Role.VIEWER)
    with pytest.raises(PermissionDeniedError, match="member"):
        await world.put(viewer).execute("k", b"1", None)
    with pytest.raises(PermissionDeniedError):
        await world.delete(viewer).execute("k")
    assert (await world.list(viewer).execute(50, None)).items == []
    with pytest.raises(NotFoundError):
        await world.get(viewer).execute("k")


async def test_a_non_member_is_told_the_workspace_does_not_exist(world: World) -> None:
    stranger = uuid.uuid4()
    await world.put(world.owner).execute("k", b"1", None)
    for attempt in (
        world.get(stranger).execute("k"),
        world.put(stranger).execute("k", b"2", None),
        world.delete(stranger).execute("k"),
        world.list(stranger).execute(50, None),
    ):
        with pytest.raises(NotFoundError, match="workspace not found"):
            await attempt
    assert (await world.get(world.owner).execute("k")).value == b"1"


async def test_entries_belong_to_their_user(world: World) -> None:
    member = world.join(Role.MEMBER)
    await world.put(world.owner).execute("k", b'"owner"', None)
    with pytest.raises(NotFoundError):
        await world.get(member).execute("k")
    with pytest.raises(NotFoundError):
        await world.delete(member).execute("k")
    await world.put(member).execute("k", b'"member"', None)
    assert (await world.get(world.owner).execute("k")).value == b'"owner"'
    assert (await world.get(member).execute("k")).value == b'"member"'


async def test_delete_removes_and_a_second_delete_is_not_found(world: World) -> None:
    await world.put(world.owner).execute("k", b"1", None)
    await world.delete(world.owner).execute("k")
    with pytest.raises(NotFoundError, match="no UI state"):
        await world.delete(world.owner).execute("k")


@pytest.mark.parametrize(
    ("quota", "detail"),
    [
        (UIStateQuota(entries_per_user=2), "2 UI-state entries across your workspaces"),
        (UIStateQuota(bytes_per_user=600), "would pass 600 bytes"),
    ],
)
async def test_the_users_quota_is_quota_exceeded(
    world: World, quota: UIStateQuota, detail: str
) -> None:
    put = world.put(world.owner, quota)
    await put.execute("a", b"1", None)
    await put.execute("b", b"2", None)
    with pytest.raises(QuotaExceededError, match=detail):
        await put.execute("c", b"3", None)
    await put.execute("a", b"4", None)  # a replacement no larger


async def test_the_cap_refuses_a_new_key_but_not_a_replacement(world: World) -> None:
    put = world.put(world.owner)
    for i in range(MAX_KEYS):
        await put.execute(f"k{i}", b"1", None)
    with pytest.raises(ConflictError, match=str(MAX_KEYS)):
        await put.execute("one-more", b"1", None)
    await put.execute("k0", b"2", None)
    world.clock.advance(DEFAULT_TTL_S + 1)  # expired keys no longer count
    await put.execute("one-more", b"1", None)


async def test_list_pages_through_the_keys_in_order(world: World) -> None:
    keys = ["b", "a", "c:1", "c.0", "A", "_"]
    for key in keys:
        await world.put(world.owner).execute(key, b"1", None)
    seen, cursor = [], None
    while True:
        page = await world.list(world.owner).execute(4, cursor)
        assert all(item.value == b"" for item in page.items)
        seen += [item.key for item in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == sorted(keys)
    exact = await world.list(world.owner).execute(len(keys), None)
    assert exact.next_cursor is None


@pytest.mark.parametrize("limit", [0, 101])
async def test_list_limits(world: World, limit: int) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        await world.list(world.owner).execute(limit, None)


@pytest.mark.parametrize("cursor", ["***", "Kg", encode_key_cursor("a b"), "w4k"])
def test_a_cursor_not_issued_here_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidInputError, match="cursor"):
        decode_key_cursor(cursor)


def test_a_cursor_round_trips() -> None:
    assert decode_key_cursor(encode_key_cursor("a:b.c-d_e")) == "a:b.c-d_e"


async def test_the_store_being_down_surfaces_as_unavailable(world: World) -> None:
    world.store.down = True
    with pytest.raises(UnavailableError):
        await world.put(world.owner).execute("k", b"1", None)


@pytest.mark.parametrize("key", ["a" * 128, "a.b:c-d_E9", "."])
def test_good_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "a" * 129, "a b", "a*", "{a}", "a\n", "é", "a/b", "a\x00"])
def test_bad_keys(key: str) -> None:
    with pytest.raises(InvalidInputError, match="key"):
        check_key(key)


def test_ttl_rule() -> None:
    assert check_ttl(None) == DEFAULT_TTL_S
    assert check_ttl(1) == 1
    assert check_ttl(MAX_TTL_S) == MAX_TTL_S


@pytest.mark.parametrize("value", [b"1", b"null", b'"x"', b"[]", b'{"a": [true, false]}', b" 0 "])
def test_json_values_are_accepted(value: bytes) -> None:
    assert check_value(value) is value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "JSON"),
        (b"NaN", "JSON"),
        (b"-Infinity", "JSON"),
        (b"{", "JSON"),
        (b"\xff", "JSON"),
        ('"é"'.encode("utf-16"), "JSON"),
        (b"[" * 10_000 + b"]" * 10_000, "nested"),
        (b'"' + b"x" * MAX_VALUE_BYTES + b'"', "bytes"),
    ],
)
def test_non_json_or_oversized_values_are_refused(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        check_value(value)
