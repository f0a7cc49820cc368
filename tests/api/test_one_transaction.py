"""Each uncached request of the benchmark's table is one transaction.

The API runs with the cache off on a database of its own; every statement
SQLAlchemy sends is recorded (class-level engine events, so the app's own
engine is the one observed) with the transaction it ran in.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from entrypoints.devstack.services import Services
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.conftest import People, Person, migrated_database


class Statements:
    """The statements sent while recording, and how many transactions began."""

    def __init__(self) -> None:
        self.recording = False
        self.begins = 0
        self.sent: list[str] = []

    def begin(self, _conn: Connection) -> None:
        if self.recording:
            self.begins += 1

    def execute(self, _conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.recording:
            self.sent.append(" ".join(statement.split()))

    def start(self) -> None:
        self.recording, self.begins, self.sent = True, 0, []

    def stop(self) -> None:
        self.recording = False


@pytest.fixture
def statements() -> Iterator[Statements]:
    found = Statements()
    event.listen(Engine, "begin", found.begin)
    event.listen(Engine, "before_cursor_execute", found.execute)
    yield found
    event.remove(Engine, "before_cursor_execute", found.execute)
    event.remove(Engine, "begin", found.begin)


@pytest.fixture
async def uncached(services: Services, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the cache off, on a database of its own."""
    async with migrated_database(services, "keel_tx") as database:
        own = msgspec.structs.replace(settings, database_url=database.runtime_url, cache=False)
        async with AsyncTestClient(create_app(own)) as test_client:
            yield test_client


async def _recorded(
    statements: Statements, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    statements.start()
    try:
        return await client.request(method, url, **kwargs)
    finally:
        statements.stop()


def _tenant_switch(statement: str) -> bool:
    return statement.startswith("select set_config('role'")


async def _setup(uncached: httpx.AsyncClient) -> tuple[People, Person, str, str]:
    people = People(uncached)
    owner = await people.new()
    workspace = await people.workspace(owner)
    base = f"/v1/workspaces/{workspace}"
    document = await people.document(
        workspace, owner, {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}}
    )
    return people, owner, base, document


async def test_each_request_of_the_table_is_one_transaction(
    uncached: httpx.AsyncClient, statements: Statements
) -> None:
    _, owner, base, document = await _setup(uncached)
    requests: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", f"{base}/foundation/{document}", {}, 200),
        ("GET", f"{base}/foundation?kind=brand&limit=50", {}, 200),
        (
            "PATCH",
            f"{base}/foundation/{document}",
            {"json": {"title": "Tone"}, "headers": {"If-Match": '"1"'}},
            200,
        ),
        (
            "POST",
            f"{base}/tasks",
            {"json": {"kind": "generate", "input": {"prompt": "launch note"}}},
            202,
        ),
    ]
    for method, url, extra, status in requests:
        headers = {**owner.headers, **extra.pop("headers", {})}
        response = await _recorded(statements, uncached, method, url, headers=headers, **extra)
        assert response.status_code == status, (method, url, response.text)
        assert statements.begins == 1, (method, url, statements.sent)
        assert _tenant_switch(statements.sent[0]), (method, url, statements.sent)
        assert sum(map(_tenant_switch, statements.sent)) == 1, (method, url, statements.sent)


async def test_uncached_read_and_page_are_one_statement_after_the_tenant_switch(
    uncached: httpx.AsyncClient, statements: Statements
) -> None:
    _, owner, base, document = await _setup(uncached)
    for url in (f"{base}/foundation/{document}", f"{base}/foundation?kind=brand&limit=50"):
        response = await _recorded(statements, uncached, "GET", url, headers=owner.headers)
        assert response.status_code == 200, response.text
        assert len(statements.sent) == 2, (url, statements.sent)


async def test_a_non_member_read_is_404_in_one_transaction(
    uncached: httpx.AsyncClient, statements: Statements
) -> None:
    people, _, base, document = await _setup(uncached)
    stranger = await people.new()
    for url in (
        f"{base}/foundation/{document}",
        f"{base}/foundation/{uuid.uuid4()}",
        f"{base}/foundation?kind=brand&limit=50",
    ):
        response = await _recorded(statements, uncached, "GET", url, headers=stranger.headers)
        assert response.status_code == 404, (url, response.text)
        assert response.json()["detail"] == "workspace not found", url
        assert statements.begins == 1, (url, statements.sent)


async def test_a_member_reading_a_missing_document_is_404_in_one_transaction(
    uncached: httpx.AsyncClient, statements: Statements
) -> None:
    _, owner, base, _ = await _setup(uncached)
    response = await _recorded(
        statements, uncached, "GET", f"{base}/foundation/{uuid.uuid4()}", headers=owner.headers
    )
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == "foundation document not found"
    assert statements.begins == 1, statements.sent


async def test_a_patch_refused_by_row_level_security_is_still_told_apart(
    uncached: httpx.AsyncClient, statements: Statements
) -> None:
    people, owner, base, document = await _setup(uncached)
    workspace = uuid.UUID(base.rsplit("/", 1)[1])
    viewer = await people.join(workspace, owner, "viewer")
    stranger = await people.new()
    url = f"{base}/foundation/{document}"
    for person, status in ((viewer, 403), (stranger, 404), (owner, 412)):
        headers = {**person.headers, "If-Match": '"7"'}
        response = await _recorded(
            statements, uncached, "PATCH", url, json={"title": "x"}, headers=headers
        )
        assert response.status_code == status, (status, response.text)
        assert statements.begins == 1, (status, statements.sent)
    assert (await uncached.get(url, headers=owner.headers)).json()["title"] == "Voice"
