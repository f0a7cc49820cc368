"""Requests cancelled in the middle of their query, then the pool reused.

The app runs in-process behind httpx's ASGI transport, which runs the app in
the client's task: cancelling the client's request cancels the handler where
it is, as a client disconnect does for an event stream, a probe's timeout or
a server shutdown. A request is cancelled while its query waits on a lock
(mid-query, for certain) or at a random moment; then more users than the pool
has connections read at once. Each must get their own rows (every user's data
is named after them), and no request may answer 500: a connection whose
operation was cut off must be idle again, or replaced, before it is reused.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.conftest import bearer

pytestmark = pytest.mark.slow  # requests cancelled under load: `pytest -m slow`

POOL_SIZE = 2  # and as many overflow connections: 4 in all
USERS = 8
ROUNDS = 12

_LOCK = sa.text("lock table foundation_documents in access exclusive mode")
_BLOCKED = sa.text(
    "select count(*) from pg_stat_activity"
    " where datname = current_database() and wait_event_type = 'Lock'"
)


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    headers: dict[str, str]
    workspace: uuid.UUID

    @property
    def documents(self) -> str:
        return f"/v1/workspaces/{self.workspace}/foundation"


@pytest.fixture(scope="module")
async def http(own_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(msgspec.structs.replace(own_settings, db_pool_size=POOL_SIZE))
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        # The lifespan is entered and left in one task (anyio requires it).
        async with app.lifespan():
            started.set()
            await stop.wait()

    running = asyncio.create_task(run())
    await started.wait()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
            yield client
    finally:
        stop.set()
        await running


@pytest.fixture(scope="module")
async def users(http: httpx.AsyncClient) -> list[User]:
    found = []
    for _ in range(USERS):
        user_id = uuid.uuid4()
        headers = bearer(user_id, f"{user_id.hex[:8]}@example.test")
        created = await http.post("/v1/workspaces", json={"name": user_id.hex}, headers=headers)
        assert created.status_code == 201, created.text
        user = User(user_id, headers, uuid.UUID(created.json()["id"]))
        for n in range(3):
            body = {
                "kind": "note",
                "title": f"{user_id.hex}-{n}",
                "content": {"owner": str(user_id)},
            }
            document = await http.post(user.documents, json=body, headers=headers)
            assert document.status_code == 201, document.text
        found.append(user)
    return found


async def _blocked_on_lock(conn: AsyncConnection) -> None:
    deadline = time.monotonic() + 10
    while not await conn.scalar(_BLOCKED):
        assert time.monotonic() < deadline, "the request never reached its query"
        await asyncio.sleep(0.005)


async def _cancel_mid_query(
    http: httpx.AsyncClient, superuser: AsyncEngine, users: list[User], n: int, moment: str
) -> list[str]:
    """Cancel one user's read while its query waits for a lock the test holds
    ("waiting"), or just as the lock goes and its rows come ("rows arriving"),
    with everyone reading at once while that connection is being cleaned up."""
    user = users[n % USERS]
    async with superuser.connect() as locker, superuser.connect() as watcher:
        await locker.begin()
        await locker.execute(_LOCK)
        request = asyncio.create_task(http.get(user.documents, headers=user.headers))
        await _blocked_on_lock(watcher)
        if moment == "rows arriving":
            await locker.rollback()
        request.cancel()
        problems = await _everyone_reads(http, users, locker if moment == "waiting" else None)
        try:
            answered = await request
        except asyncio.CancelledError:
            return problems
    # Only with the lock already gone can the rows beat the cancel; then the
    # answer is the user's own.
    assert moment == "rows arriving", "a request blocked on the lock was not cancelled"
    assert answered.status_code == 200, answered.text
    assert all(item["content"] == {"owner": str(user.id)} for item in answered.json()["items"])
    return problems


async def _cancel_at_random(http: httpx.AsyncClient, user: User, rng: random.Random) -> None:
    """Cancel `user`'s write at some moment of it: checkout, BEGIN, a statement, COMMIT."""
    body = {"kind": "note", "title": f"{user.id.hex}-cut", "content": {"owner": str(user.id)}}
    request = asyncio.create_task(http.post(user.documents, json=body, headers=user.headers))
    await asyncio.sleep(rng.uniform(0, 0.03))
    request.cancel()
    try:
        answered = await request
    except asyncio.CancelledError:
        return
    assert answered.status_code in (201, 503), answered.text


async def _everyone_reads(
    http: httpx.AsyncClient, users: list[User], locker: AsyncConnection | None = None
) -> list[str]:
    """Every user reads at once (more users than connections); what went wrong.

    With `locker`, its lock is released once the reads have started."""

    async def one(user: User) -> str | None:
        response = await http.get(user.documents, headers=user.headers)
        if response.status_code != 200:
            return f"{user.id}: {response.status_code} {response.text[:300]}"
        items = response.json()["items"]
        if not items or any(item["content"] != {"owner": str(user.id)} for item in items):
            return f"{user.id} was served rows that are not theirs: {items}"
        return None

    reads = asyncio.gather(*(one(user) for user in users))
    if locker is not None:
        await asyncio.sleep(0)
        await locker.rollback()
    answers = await reads
    return [answer for answer in answers if answer is not None]


@pytest.mark.parametrize("moment", ["waiting", "rows arriving"])
async def test_a_request_cancelled_mid_query_leaves_the_pool_serving_everyone_their_rows(
    http: httpx.AsyncClient, superuser: AsyncEngine, users: list[User], moment: str
) -> None:
    problems = []
    for n in range(ROUNDS):
        problems += await _cancel_mid_query(http, superuser, users, n, moment)
        problems += await _everyone_reads(http, users)
    assert not problems, "\n".join(problems)


async def test_requests_cancelled_at_any_moment_leave_the_pool_serving_everyone_their_rows(
    http: httpx.AsyncClient, users: list[User]
) -> None:
    rng, problems = random.Random(17), []
    for n in range(ROUNDS * 2):
        await asyncio.gather(*(_cancel_at_random(http, user, rng) for user in users[: n % 4 + 1]))
        problems += await _everyone_reads(http, users)
    assert not problems, "\n".join(problems)
