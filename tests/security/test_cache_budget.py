"""What one workspace keeps in the Redis cache is bounded
(KEEL_CACHE_BYTES_PER_WORKSPACE): reading every document of a workspace,
one after another or all at once, caches no more than the budget, and every
read still answers the document as it is (from Postgres past the budget).

Before the bound, every document read was cached for its TTL: a member who
wrote many large documents and read them all held them all in Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.live import live

BUDGET = 1024 * 1024
DOCS = 10
BIG = 200_000


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # A real server: the in-process test client runs one request at a time.
    async with live(settings, cache_bytes_per_workspace=BUDGET) as client:
        yield client


async def _cached_bytes(redis: Redis, workspace: uuid.UUID) -> int:
    """The size of the workspace's cached values, read from Redis itself."""
    total = 0
    async for name in redis.scan_iter(match=f"keel:{{ws:{workspace}}}:v:*", count=1000):
        total += int(await redis.strlen(name))
    return total


async def _documents(people: People, owner: Person, workspace: uuid.UUID) -> list[str]:
    return [
        await people.document(
            workspace,
            owner,
            {"kind": "brand", "title": f"D{i}", "content": {"text": str(i) * BIG}, "tags": []},
        )
        for i in range(DOCS)
    ]


async def _read_all(
    http: httpx.AsyncClient, owner: Person, workspace: uuid.UUID, ids: list[str], at_once: bool
) -> None:
    urls = [f"/v1/workspaces/{workspace}/foundation/{doc}" for doc in ids]
    for _ in range(2):
        if at_once:
            answers = await asyncio.gather(*(http.get(url, headers=owner.headers) for url in urls))
        else:
            answers = [await http.get(url, headers=owner.headers) for url in urls]
        for i, answer in enumerate(answers):
            assert answer.status_code == 200, answer.text
            assert answer.json()["content"]["text"] == str(i) * BIG


@pytest.mark.parametrize("at_once", [False, True])
async def test_reading_every_document_caches_at_most_the_budget(
    http: httpx.AsyncClient, redis: Redis, at_once: bool
) -> None:
    people = People(http)
    owner = await people.new()
    workspace = await people.workspace(owner)
    ids = await _documents(people, owner, workspace)
    await _read_all(http, owner, workspace, ids, at_once)
    cached = await _cached_bytes(redis, workspace)
    assert 0 < cached <= BUDGET
    assert int(await redis.get(f"keel:{{ws:{workspace}}}:cache-total") or 0) <= BUDGET
    # The budget is the workspace's: the owner's next workspace has its own.
    second = await people.workspace(owner, "second")
    more = await _documents(people, owner, second)
    await _read_all(http, owner, second, more, at_once)
    assert 0 < await _cached_bytes(redis, second) <= BUDGET


async def test_a_write_past_the_budget_is_still_read_fresh(
    http: httpx.AsyncClient, redis: Redis
) -> None:
    people = People(http)
    owner = await people.new()
    workspace = await people.workspace(owner)
    ids = await _documents(people, owner, workspace)
    await _read_all(http, owner, workspace, ids, at_once=False)
    url = f"/v1/workspaces/{workspace}/foundation/{ids[-1]}"
    patched = await http.patch(
        url, json={"title": "changed"}, headers={**owner.headers, "If-Match": '"1"'}
    )
    assert patched.status_code == 200, patched.text
    assert (await http.get(url, headers=owner.headers)).json()["title"] == "changed"
    assert await _cached_bytes(redis, workspace) <= BUDGET
