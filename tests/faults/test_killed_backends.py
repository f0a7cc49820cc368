"""Every Postgres backend of the database terminated again and again under load.

A real API (uvicorn in the test's loop, its own database) serves many users at
once while another task runs `pg_terminate_backend` on every other backend of
the database every 0.7 s. Each user owns data no one else has (a workspace
and documents named after them), so a response carrying another request's
rows is caught. A request may fail while its backend dies, but only with a
503 and `Retry-After`; never a 500, and never with someone else's rows. Once
the terminations stop, every user is served again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from entrypoints.settings import Settings
from tests.conftest import bearer
from tests.faults.ledger import summary
from tests.live import live

USERS = 16
TERMINATE_EVERY_S = 0.7

_TERMINATE = sa.text(
    "select count(pg_terminate_backend(pid)) from pg_stat_activity"
    " where datname = current_database() and pid <> pg_backend_pid()"
)


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    headers: dict[str, str]
    workspace: uuid.UUID


@dataclass
class Findings:
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def check(self, user: User, response: httpx.Response, owned: bool) -> None:
        self.statuses[response.status_code] += 1
        where = f"{response.request.method} {response.request.url.path}"
        if response.status_code == 503:
            if not response.headers.get("Retry-After", "").isdigit():
                self.failures.append(f"{where}: 503 without Retry-After")
        elif response.status_code >= 500:
            self.failures.append(f"{where}: {response.status_code} {response.text[:300]}")
        elif response.status_code < 300 and not owned:
            self.failures.append(f"{where}: another user's rows for {user.id}: {response.text}")


@pytest.fixture(scope="module")
async def http(own_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # A small pool, so that every connection is reused by many users.
    async with live(own_settings, db_pool_size=4) as client:
        yield client


@pytest.fixture(scope="module")
async def users(http: httpx.AsyncClient) -> list[User]:
    async def one() -> User:
        user_id = uuid.uuid4()
        headers = bearer(user_id, f"{user_id.hex[:8]}@example.test")
        created = await http.post("/v1/workspaces", json={"name": user_id.hex}, headers=headers)
        assert created.status_code == 201, created.text
        workspace = uuid.UUID(created.json()["id"])
        user = User(user_id, headers, workspace)
        for n in range(3):
            url, body = _new_document(user, n)
            document = await http.post(url, json=body, headers=headers)
            assert document.status_code == 201, document.text
        return user

    return list(await asyncio.gather(*(one() for _ in range(USERS))))


def _new_document(user: User, n: int) -> tuple[str, dict[str, object]]:
    body = {"kind": "note", "title": f"{user.id.hex}-{n}", "content": {"owner": str(user.id)}}
    return f"/v1/workspaces/{user.workspace}/foundation", body


def _documents_owned(user: User, body: dict[str, object]) -> bool:
    items = body.get("items")
    return (
        isinstance(items, list)
        and len(items) >= 3
        and all(item["content"] == {"owner": str(user.id)} for item in items)
        and all(item["title"].startswith(user.id.hex) for item in items)
    )


async def _one_round(http: httpx.AsyncClient, user: User, n: int, findings: Findings) -> None:
    """Every kind of read a user makes, and a write; each answer checked for its owner."""
    me = await http.get("/v1/me", headers=user.headers)
    findings.check(user, me, me.status_code != 200 or _me_owned(user, me.json()))
    mine = await http.get("/v1/workspaces", headers=user.headers)
    findings.check(user, mine, mine.status_code != 200 or _workspaces_owned(user, mine.json()))
    listed = await http.get(f"/v1/workspaces/{user.workspace}/foundation", headers=user.headers)
    findings.check(user, listed, listed.status_code != 200 or _documents_owned(user, listed.json()))
    url, body = _new_document(user, 100 + n)
    written = await http.post(url, json=body, headers=user.headers)
    findings.check(
        user,
        written,
        written.status_code != 201 or written.json()["content"] == {"owner": str(user.id)},
    )


def _me_owned(user: User, body: dict[str, object]) -> bool:
    memberships = body["memberships"]
    assert isinstance(memberships, list)
    return body["id"] == str(user.id) and _names_owned(user, memberships)


def _workspaces_owned(user: User, body: dict[str, object]) -> bool:
    items = body["items"]
    assert isinstance(items, list)
    return _names_owned(user, items)


def _names_owned(user: User, workspaces: list[dict[str, object]]) -> bool:
    return [w["name"] for w in workspaces] == [user.id.hex]


async def _load(
    http: httpx.AsyncClient, users: list[User], stop: asyncio.Event, findings: Findings
) -> None:
    async def one_user(user: User) -> None:
        n = 0
        while not stop.is_set():
            await _one_round(http, user, n, findings)
            n += 1

    await asyncio.gather(*(one_user(user) for user in users))


async def _terminate(superuser: AsyncEngine, seconds: float) -> int:
    """Terminate every other backend of the database every 0.7 s; how many in all."""
    killed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        async with superuser.connect() as conn:
            killed += int((await conn.execute(_TERMINATE)).scalar_one())
        await asyncio.sleep(TERMINATE_EVERY_S)
    return killed


@pytest.mark.slow  # 10 s of terminations under load
async def test_terminated_backends_answer_503_and_never_another_users_rows(
    http: httpx.AsyncClient, superuser: AsyncEngine, users: list[User]
) -> None:
    seconds = 10.0
    findings, stop = Findings(), asyncio.Event()
    load = asyncio.create_task(_load(http, users, stop, findings))
    try:
        killed = await _terminate(superuser, seconds)
    finally:
        stop.set()
        await load
    errors = {status: n for status, n in findings.statuses.items() if status >= 400}
    line = summary("postgres terminated, tenancy", findings.statuses.total(), errors, 0, 0, "n/a")
    print("\n" + line)
    assert killed > 0, "the scenario terminated no backend"
    assert not findings.failures, (
        f"{len(findings.failures)} bad answers ({dict(findings.statuses)}):\n"
        + "\n".join(findings.failures[:20])
    )
    assert findings.statuses[503] > 0, f"no request met a terminated backend: {findings.statuses}"
    # The terminations have stopped: a connection that died in the last round
    # may fail one more request (503), then every user is served again.
    settling, after = Findings(), Findings()
    await asyncio.gather(*(_one_round(http, user, 10_000, settling) for user in users))
    await asyncio.gather(*(_one_round(http, user, 10_001, after) for user in users))
    assert not settling.failures + after.failures, "\n".join(settling.failures + after.failures)
    assert set(after.statuses) <= {200, 201}, dict(after.statuses)
