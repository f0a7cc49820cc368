"""Stream tickets are Redis keys that a user's requests create: a user holds
at most KEEL_SSE_TICKETS_PER_USER unused ones at a time, across all their
workspaces and however many requests race (past it: 429 with Retry-After).
A redeemed ticket gives its place back.

Before the bound, every POST stream-tickets stored one more key for 60 s:
a loop of requests kept as many in Redis as it could send in a minute."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from entrypoints.settings import Settings
from tests.conftest import People
from tests.live import live, stream_status

PER_USER = 5


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # A real server: the in-process test client runs one request at a time.
    async with live(settings, sse_tickets_per_user=PER_USER) as client:
        yield client


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert f"at most {PER_USER} unused stream tickets" in response.json()["detail"]
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["ratelimit-limit"] == str(PER_USER)
    assert response.headers["ratelimit-remaining"] == "0"


async def _tickets_in_redis(redis: Redis) -> int:
    return len([name async for name in redis.scan_iter(match="keel:ticket:*", count=1000)])


@pytest.mark.parametrize(("workspaces", "at_once"), [(1, 20), (4, 30), (8, 8)])
async def test_racing_requests_across_workspaces_hold_at_most_the_bound(
    http: httpx.AsyncClient, redis: Redis, workspaces: int, at_once: int
) -> None:
    people = People(http)
    owner = await people.new()
    spaces = [await people.workspace(owner, f"W{i}") for i in range(workspaces)]
    before = await _tickets_in_redis(redis)
    answers = await asyncio.gather(
        *(
            http.post(
                f"/v1/workspaces/{spaces[i % workspaces]}/stream-tickets",
                json={},
                headers=owner.headers,
            )
            for i in range(at_once)
        )
    )
    statuses = Counter(answer.status_code for answer in answers)
    granted = min(PER_USER, at_once)
    assert statuses == Counter({201: granted, 429: at_once - granted}) - Counter()
    for answer in answers:
        if answer.status_code != 201:
            _refused(answer)
    # Other tests' tickets may lapse meanwhile: an upper bound is what can be read.
    assert await _tickets_in_redis(redis) - before <= granted
    # Someone else is not counted against this user.
    other = await people.new()
    theirs = await people.workspace(other)
    answer = await http.post(f"/v1/workspaces/{theirs}/stream-tickets", headers=other.headers)
    assert answer.status_code == 201


async def test_a_redeemed_ticket_gives_its_place_back(http: httpx.AsyncClient) -> None:
    people = People(http)
    owner = await people.new()
    workspace = await people.workspace(owner)
    url = f"/v1/workspaces/{workspace}/stream-tickets"
    tickets = [(await http.post(url, headers=owner.headers)).json()["ticket"] for _ in range(5)]
    _refused(await http.post(url, headers=owner.headers))
    events = f"/v1/workspaces/{workspace}/tasks/{uuid.uuid4()}/events?ticket={tickets[0]}"
    await stream_status(http, events)  # redeemed (the task does not exist: 404)
    assert (await http.post(url, headers=owner.headers)).status_code == 201
    _refused(await http.post(url, headers=owner.headers))
