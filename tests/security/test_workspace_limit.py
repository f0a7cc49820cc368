"""One user owns at most KEEL_MAX_WORKSPACES_PER_USER workspaces, however the
creations arrive: one after another, or many at once (each request counts
under a lock on the caller's profile, so concurrent ones cannot all see room).

Every workspace is room in Redis (its cache, its event streams), so free
workspaces would let one account take Redis' memory from everybody."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from entrypoints.settings import Settings
from tests.conftest import People
from tests.live import live

LIMIT = 3
_OWNED = sa.text("select count(*) from memberships where user_id = :user and role = 'owner'")


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # A real server: the in-process test client runs one request at a time.
    async with live(settings, max_workspaces_per_user=LIMIT) as client:
        yield client


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["title"] == "Limit reached"
    assert f"you own {LIMIT} workspaces" in body["detail"]


async def _owned(owner_engine: AsyncEngine, user: uuid.UUID) -> int:
    async with owner_engine.connect() as conn:
        return int((await conn.execute(_OWNED, {"user": user})).scalar_one())


async def test_one_after_another_the_limit_holds_and_a_delete_makes_room(
    limited: httpx.AsyncClient, owner_engine: AsyncEngine
) -> None:
    people = People(limited)
    owner = await people.new()
    made = [await people.workspace(owner, f"W{i}") for i in range(LIMIT)]
    for name in ("one more", "W0", "x" * 200):
        _refused(await limited.post("/v1/workspaces", json={"name": name}, headers=owner.headers))
    deleted = await limited.delete(f"/v1/workspaces/{made[0]}", headers=owner.headers)
    assert deleted.status_code == 204
    await people.workspace(owner, "again")
    _refused(await limited.post("/v1/workspaces", json={"name": "n"}, headers=owner.headers))
    assert await _owned(owner_engine, owner.id) == LIMIT
    # Another user is not counted against the first one's workspaces.
    await people.workspace(await people.new(), "theirs")


@pytest.mark.parametrize(("already", "at_once"), [(0, 12), (1, 8), (2, 20), (LIMIT, 6)])
async def test_concurrent_creations_never_pass_the_limit(
    limited: httpx.AsyncClient, owner_engine: AsyncEngine, already: int, at_once: int
) -> None:
    people = People(limited)
    owner = await people.new()
    for i in range(already):
        await people.workspace(owner, f"before {i}")
    answers = await asyncio.gather(
        *(
            limited.post("/v1/workspaces", json={"name": f"race {i}"}, headers=owner.headers)
            for i in range(at_once)
        )
    )
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == Counter({201: LIMIT - already, 409: at_once - (LIMIT - already)}) - Counter()
    for answer in answers:
        if answer.status_code == 409:
            _refused(answer)
    assert await _owned(owner_engine, owner.id) == LIMIT
