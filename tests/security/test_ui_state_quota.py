"""What one user keeps in Redis as UI state is bounded across all their
workspaces: in entries and in bytes (value + key + a fixed overhead each),
checked and written in one Redis script, so that neither more workspaces nor
concurrent writers get past it. Past it: 413 `Quota exceeded`, nothing stored.

Before the bound, the cap was 1000 keys of 64 KiB per (user, workspace), and
workspaces were free: one account could fill Redis, and a `noeviction` Redis
that is full refuses every tenant's writes."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from domain.ui_state import ENTRY_OVERHEAD_BYTES
from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.live import live

BYTES = 300_000
ENTRIES = 12


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # A real server: the in-process test client runs one request at a time.
    async with live(
        settings, ui_state_bytes_per_user=BYTES, ui_state_entries_per_user=ENTRIES
    ) as client:
        yield client


def _value(size: int) -> str:
    """A JSON string whose encoding is `size` bytes."""
    return "x" * (size - 2)


def _charge(key: str, size: int) -> int:
    return size + len(key) + ENTRY_OVERHEAD_BYTES


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "Quota exceeded"


async def _stored_bytes(redis: Redis, user: uuid.UUID) -> int:
    """What the user's entries hold in Redis, read from Redis itself."""
    total = 0
    async for name in redis.scan_iter(match=f"keel:{{u:{user}}}:ui:*", count=1000):
        total += int(await redis.strlen(name))
    return total


async def _workspaces(people: People, owner: Person, count: int) -> list[uuid.UUID]:
    return [await people.workspace(owner, f"W{i}") for i in range(count)]


@pytest.mark.parametrize(
    ("size", "spread"),
    [(60_000, "round-robin"), (60_000, "one workspace"), (20_000, "round-robin"), (700, "new")],
)
async def test_many_workspaces_do_not_pass_the_users_bound(
    http: httpx.AsyncClient, redis: Redis, size: int, spread: str
) -> None:
    people = People(http)
    owner = await people.new()
    workspaces = await _workspaces(people, owner, 6)
    accepted: list[int] = []
    refusals = 0
    for i in range(40):
        if spread == "new":
            workspace = await people.workspace(owner, f"extra {i}") if i < 30 else workspaces[0]
        elif spread == "round-robin":
            workspace = workspaces[i % len(workspaces)]
        else:
            workspace = workspaces[0]
        key = f"k{i:03}"
        put = await http.put(
            f"/v1/workspaces/{workspace}/ui-state/{key}", json=_value(size), headers=owner.headers
        )
        if put.status_code == 200:
            accepted.append(_charge(key, size))
        else:
            _refused(put)
            refusals += 1
    assert refusals > 0
    assert sum(accepted) <= BYTES
    assert len(accepted) <= ENTRIES
    assert await _stored_bytes(redis, owner.id) <= BYTES
    # The bound is the user's: someone else writes as before.
    other = await people.new()
    theirs = await people.workspace(other)
    put = await http.put(f"/v1/workspaces/{theirs}/ui-state/k", json=1, headers=other.headers)
    assert put.status_code == 200


@pytest.mark.parametrize(("size", "at_once"), [(60_000, 24), (30_000, 40), (500, 48)])
async def test_concurrent_writers_cannot_pass_it_together(
    http: httpx.AsyncClient, redis: Redis, size: int, at_once: int
) -> None:
    people = People(http)
    owner = await people.new()
    workspaces = await _workspaces(people, owner, 4)
    keys = [f"race.{i:03}" for i in range(at_once)]
    answers = await asyncio.gather(
        *(
            http.put(
                f"/v1/workspaces/{workspaces[i % 4]}/ui-state/{key}",
                json=_value(size),
                headers=owner.headers,
            )
            for i, key in enumerate(keys)
        )
    )
    statuses = Counter(answer.status_code for answer in answers)
    fits = min(ENTRIES, BYTES // _charge(keys[0], size))
    assert statuses == Counter({200: fits, 413: at_once - fits})
    for answer in answers:
        if answer.status_code != 200:
            _refused(answer)
    assert await _stored_bytes(redis, owner.id) <= BYTES


async def test_deleting_or_expiring_gives_the_room_back_and_replacing_needs_none(
    http: httpx.AsyncClient,
) -> None:
    people = People(http)
    owner = await people.new()
    first, second = await _workspaces(people, owner, 2)
    big = _value(60_000)

    def url(workspace: uuid.UUID, key: str) -> str:
        return f"/v1/workspaces/{workspace}/ui-state/{key}"

    for i in range(4):
        put = await http.put(url(first, f"b{i}"), json=big, headers=owner.headers)
        assert put.status_code == 200
    _refused(await http.put(url(second, "b4"), json=big, headers=owner.headers))
    # At the bound, an entry may still be replaced by one no larger.
    assert (await http.put(url(first, "b0"), json=big, headers=owner.headers)).status_code == 200
    assert (await http.delete(url(first, "b0"), headers=owner.headers)).status_code == 204
    assert (await http.put(url(second, "b4"), json=big, headers=owner.headers)).status_code == 200
    _refused(await http.put(url(second, "b5"), json=big, headers=owner.headers))
    short = await http.put(f"{url(first, 'b1')}?ttl=1", json=big, headers=owner.headers)
    assert short.status_code == 200
    await asyncio.sleep(1.2)
    assert (await http.put(url(second, "b5"), json=big, headers=owner.headers)).status_code == 200


async def test_the_entry_bound_holds_across_workspaces(http: httpx.AsyncClient) -> None:
    people = People(http)
    owner = await people.new()
    workspaces = await _workspaces(people, owner, 5)
    statuses = [
        (
            await http.put(
                f"/v1/workspaces/{workspaces[i % 5]}/ui-state/e{i}", json=i, headers=owner.headers
            )
        ).status_code
        for i in range(ENTRIES + 5)
    ]
    assert statuses == [200] * ENTRIES + [413] * 5
