"""The Redis UI-state store and its in-memory fake keep the same contract."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from adapters.clock import SystemClock
from adapters.redis.ui_state import RedisUIStateStore
from domain.ports import UIStateStore
from domain.ui_state import Refusal, UIState, UIStateQuota, charge
from tests.fakes import InMemoryUIStateStore


@pytest.fixture(params=["redis", "fake"])
def store(request: pytest.FixtureRequest, redis: Redis) -> UIStateStore:
    return (
        RedisUIStateStore(redis)
        if request.param == "redis"
        else InMemoryUIStateStore(SystemClock())
    )


TWO = UIStateQuota(keys_per_workspace=2)
ONE = UIStateQuota(keys_per_workspace=1)


def _state(workspace: uuid.UUID, user: uuid.UUID, key: str, value: bytes = b"1") -> UIState:
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    return UIState(workspace, user, key, value, expires_at)


async def test_the_contract(store: UIStateStore) -> None:
    workspace, user, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert await store.get(workspace, user, "k") is None
    first = _state(workspace, user, "k", b'{"a": 1}')
    assert await store.put(first, TWO) is None
    assert await store.get(workspace, user, "k") == first
    assert await store.get(workspace, other, "k") is None
    assert await store.get(uuid.uuid4(), user, "k") is None

    assert await store.put(_state(workspace, user, "a"), TWO) is None
    at_the_cap = await store.put(_state(workspace, user, "third"), TWO)
    assert at_the_cap is Refusal.WORKSPACE_KEYS
    replaced = _state(workspace, user, "k", b"2")
    assert await store.put(replaced, TWO) is None  # a replacement is not a new key
    assert await store.put(_state(workspace, other, "third"), TWO) is None  # the cap is per user

    listed = await store.list(workspace, user)
    assert [(s.key, s.value, s.expires_at) for s in listed] == [
        ("a", b"", replaced.expires_at),
        ("k", b"", replaced.expires_at),
    ]
    assert await store.delete(workspace, user, "k")
    assert not await store.delete(workspace, user, "k")
    assert [s.key for s in await store.list(workspace, user)] == ["a"]
    assert await store.put(_state(workspace, user, "third"), TWO) is None


async def test_expired_entries_neither_list_nor_count(redis: Redis) -> None:
    store, workspace, user = RedisUIStateStore(redis), uuid.uuid4(), uuid.uuid4()
    soon = UIState(workspace, user, "soon", b"1", datetime.now(UTC) + timedelta(milliseconds=200))
    assert await store.put(soon, ONE) is None
    assert await store.put(_state(workspace, user, "later"), ONE) is Refusal.WORKSPACE_KEYS
    await asyncio.sleep(0.3)
    assert await store.list(workspace, user) == []
    assert await store.get(workspace, user, "soon") is None
    assert await store.put(_state(workspace, user, "later"), ONE) is None


async def test_the_users_quota_spans_workspaces(store: UIStateStore) -> None:
    user, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    value = b'"' + b"x" * 998 + b'"'
    one = charge(_state(first, user, "a", value))
    quota = UIStateQuota(entries_per_user=3, bytes_per_user=2 * one)
    assert await store.put(_state(first, user, "a", value), quota) is None
    assert await store.put(_state(second, user, "a", value), quota) is None
    # Bytes: a third entry would pass them, in either workspace.
    for workspace in (first, second, uuid.uuid4()):
        refused = await store.put(_state(workspace, user, "b", value), quota)
        assert refused is Refusal.USER_BYTES
    # Replacing an entry by one no larger needs no room; a larger one does.
    assert await store.put(_state(first, user, "a", b"1"), quota) is None
    assert await store.put(_state(second, user, "b", b"2"), quota) is None
    refused = await store.put(_state(first, user, "c", b"3"), quota)
    assert refused is Refusal.USER_ENTRIES
    assert await store.put(_state(first, uuid.uuid4(), "c", value), quota) is None  # per user
    assert await store.delete(second, user, "b")
    assert await store.put(_state(first, user, "c", b"3"), quota) is None
