"""The API and the worker with every transaction through PgBouncer in
transaction mode (2 server connections): tasks run and end, documents go
through their whole life, the outbox is polled without LISTEN, and the
tenant context never outlives its transaction on a shared server connection."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.database import create_engine
from adapters.postgres.dispatch import POLL_S, PgTaskDispatcher
from adapters.postgres.uow import enter_tenant
from domain.entities import Caller
from entrypoints.settings import Settings
from tests.conftest import Database, People, Person
from tests.integration.test_tasks import running_worker, wait_until
from tests.live import live
from tests.pooler import running_pooler

TASK = {"kind": "summarize", "input": {"text": "Keel runs agents for many workspaces."}}
BRAND = {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}, "tags": ["core"]}


def _worker_settings(settings: Settings, **changes: Any) -> Settings:
    return msgspec.structs.replace(
        settings,
        queue_prefix="{test-" + uuid.uuid4().hex[:12] + "}",
        sim_token_delay_ms=1,
        task_redispatch_s=2,
        task_lease_s=5,
        **changes,
    )


async def _status(
    client: httpx.AsyncClient, person: Person, workspace: uuid.UUID, task: str
) -> str:
    response = await client.get(f"/v1/workspaces/{workspace}/tasks/{task}", headers=person.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def test_a_task_started_through_the_pooler_is_run_by_a_polling_worker_through_it(
    pooled_client: httpx.AsyncClient,
    pooled_people: People,
    pooled_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = await pooled_people.new()
    workspace = await pooled_people.workspace(owner)
    ids = []
    for _ in range(3):
        started = await pooled_client.post(
            f"/v1/workspaces/{workspace}/tasks", json=TASK, headers=owner.headers
        )
        assert started.status_code == 202, started.text
        ids.append(started.json()["id"])
    assert pooled_settings.listen_url is None
    caplog.set_level(logging.INFO, logger="keel.dispatch")

    async def all_succeeded() -> bool:
        states = [await _status(pooled_client, owner, workspace, task) for task in ids]
        assert "failed" not in states
        return all(state == "succeeded" for state in states)

    async with running_worker(_worker_settings(pooled_settings)):
        await wait_until(all_succeeded)
    said = [r for r in caplog.records if "KEEL_DATABASE_LISTEN_URL" in r.getMessage()]
    assert len(said) == 1


async def test_documents_live_their_whole_life_through_the_pooler(
    pooled_client: httpx.AsyncClient, pooled_people: People
) -> None:
    owner = await pooled_people.new()
    workspace = await pooled_people.workspace(owner)
    url = f"/v1/workspaces/{workspace}/foundation"
    created = await pooled_client.post(url, json=BRAND, headers=owner.headers)
    assert created.status_code == 201, created.text
    one = f"{url}/{created.json()['id']}"
    read = await pooled_client.get(one, headers=owner.headers)
    assert (read.status_code, read.headers["etag"]) == (200, '"1"')
    patched = await pooled_client.patch(
        one, json={"title": "Voice 2"}, headers={**owner.headers, "If-Match": '"1"'}
    )
    assert (patched.status_code, patched.json()["title"]) == (200, "Voice 2")
    listed = await pooled_client.get(url, params={"kind": "brand"}, headers=owner.headers)
    assert [item["title"] for item in listed.json()["items"]] == ["Voice 2"]
    deleted = await pooled_client.delete(one, headers={**owner.headers, "If-Match": '"2"'})
    assert deleted.status_code == 204
    assert (await pooled_client.get(one, headers=owner.headers)).status_code == 404


async def test_a_commit_through_the_pooler_wakes_a_direct_listen(
    pooled_client: httpx.AsyncClient,
    pooled_people: People,
    pooled_engine: AsyncEngine,
    settings: Settings,
) -> None:
    assert settings.database_url is not None
    dispatcher = PgTaskDispatcher(pooled_engine, settings.database_url)
    try:
        await dispatcher.wait_for_work(0)  # LISTENing from here on
        owner = await pooled_people.new()
        workspace = await pooled_people.workspace(owner)
        started = await pooled_client.post(
            f"/v1/workspaces/{workspace}/tasks", json=TASK, headers=owner.headers
        )
        assert started.status_code == 202
        # Far longer than a poll: only the notification ends the wait in time.
        await asyncio.wait_for(dispatcher.wait_for_work(600), 30)
    finally:
        await dispatcher.close()


async def test_without_listen_the_wait_is_a_short_poll(pooled_engine: AsyncEngine) -> None:
    dispatcher = PgTaskDispatcher(pooled_engine, None)
    await asyncio.wait_for(dispatcher.wait_for_work(600), 60 * POLL_S)
    await dispatcher.close()


_VISIBLE = sa.text(
    "select current_setting('app.workspace_id', true) as before, pg_backend_pid() as pid"
)
_ROWS = sa.text("select workspace_id from foundation_documents")
_NOW = sa.text("select current_setting('app.workspace_id', true)")


async def test_two_tenants_interleaved_on_two_server_connections_never_see_each_other(
    pooled_client: httpx.AsyncClient, pooled_people: People, pooled_engine: AsyncEngine
) -> None:
    tenants: list[tuple[Person, uuid.UUID]] = []
    for name in ("A", "B"):
        owner = await pooled_people.new()
        workspace = await pooled_people.workspace(owner, name)
        for n in range(3):
            await pooled_people.document(
                workspace, owner, {"kind": "brand", "title": f"{name}{n}", "content": {}}
            )
        tenants.append((owner, workspace))
    pids: dict[uuid.UUID, set[int]] = {workspace: set() for _, workspace in tenants}

    async def transaction(owner: Person, workspace: uuid.UUID) -> None:
        async with pooled_engine.connect() as conn, conn.begin():
            first = (await conn.execute(_VISIBLE)).one()
            assert first.before in (None, ""), "a tenant context outlived its transaction"
            pids[workspace].add(first.pid)
            await enter_tenant(conn, Caller(owner.id, workspace))
            # No WHERE: only the tenant context decides what is visible.
            seen = {row.workspace_id for row in await conn.execute(_ROWS)}
            assert seen == {workspace}
            assert await conn.scalar(_NOW) == str(workspace)

    async def request(owner: Person, workspace: uuid.UUID) -> None:
        listed = await pooled_client.get(
            f"/v1/workspaces/{workspace}/foundation", headers=owner.headers
        )
        assert listed.status_code == 200, listed.text
        assert {item["workspace_id"] for item in listed.json()["items"]} == {str(workspace)}

    rounds = [tenants[i % 2] for i in range(200)]
    await asyncio.gather(*(transaction(owner, workspace) for owner, workspace in rounds))
    await asyncio.gather(*(request(owner, workspace) for owner, workspace in rounds))
    # Both tenants ran on the same two server sessions: the test interleaved them.
    assert len(pids[tenants[0][1]] | pids[tenants[1][1]]) <= 2
    assert pids[tenants[0][1]] & pids[tenants[1][1]]


async def test_a_request_past_the_pooler_budget_answers_503_and_the_next_one_is_served(
    database: Database, pooled_settings: Settings, pooled_people: People
) -> None:
    """Both server connections held: PgBouncer ends the waiting client after its
    query_wait_timeout (1 s here), and Keel answers 503 with Retry-After."""
    person = await pooled_people.new()
    users = [str(make_url(database.runtime_url).username)]
    with running_pooler(database.server_url, users, query_wait_timeout_s=1) as pooler:
        url = pooler.url(database.runtime_url)
        engine = create_engine(url, pool_size=2, statement_cache=False)
        try:
            async with live(pooled_settings, database_url=url) as http:
                held = [await engine.connect() for _ in range(2)]
                try:
                    for conn in held:  # both server connections, each in an open transaction
                        await conn.begin()
                        await conn.execute(sa.text("select 1"))
                    waited = await http.get("/v1/me", headers=person.headers)
                    assert waited.status_code == 503, waited.text
                    assert waited.headers["retry-after"] == "1"
                finally:
                    for conn in held:
                        await conn.close()
                assert (await http.get("/v1/me", headers=person.headers)).status_code == 200
        finally:
            await engine.dispose()
