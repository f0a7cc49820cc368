"""The cached read path: no Postgres on a hit, never stale after a write,
never another tenant's value, and still answering when Redis is gone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from entrypoints.devstack.redis import EmbeddedRedis
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.conftest import People, bearer

BRAND = {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}, "tags": []}


@contextmanager
def counting_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def _app_engine(client: httpx.AsyncClient) -> AsyncEngine:
    app: Litestar = client.app  # type: ignore[attr-defined]
    engine: AsyncEngine = await app.state.dishka_container.get(AsyncEngine)
    return engine


async def test_a_cached_read_sends_nothing_to_postgres(
    client: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    document = await people.document(workspace, owner, BRAND)
    url = f"/v1/workspaces/{workspace}/foundation/{document}"
    engine = await _app_engine(client)
    with counting_statements(engine) as first:
        assert (await client.get(url, headers=owner.headers)).status_code == 200
    with counting_statements(engine) as second:
        assert (await client.get(url, headers=owner.headers)).status_code == 200
    assert len(first) >= 2, first
    assert second == []


async def test_a_write_is_visible_on_the_next_read(
    client: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    url = f"/v1/workspaces/{workspace}/foundation/{await people.document(workspace, owner, BRAND)}"
    for i in range(5):
        assert (await client.get(url, headers=owner.headers)).json()["title"] == (
            "Voice" if i == 0 else f"v{i - 1}"
        )
        await client.patch(url, json={"title": f"v{i}"}, headers=owner.headers)
    await client.delete(url, headers=owner.headers)
    assert (await client.get(url, headers=owner.headers)).status_code == 404


async def test_a_removed_member_is_refused_on_the_very_next_request(
    client: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    viewer = await people.join(workspace, owner, "viewer")
    url = f"/v1/workspaces/{workspace}/foundation/{await people.document(workspace, owner, BRAND)}"
    for _ in range(2):
        assert (await client.get(url, headers=viewer.headers)).status_code == 200
    removed = await client.delete(
        f"/v1/workspaces/{workspace}/members/{viewer.id}", headers=owner.headers
    )
    assert removed.status_code == 204
    assert (await client.get(url, headers=viewer.headers)).status_code == 404


async def test_documents_with_the_same_id_in_two_workspaces_stay_apart(
    client: httpx.AsyncClient, people: People, owner_engine: AsyncEngine
) -> None:
    shared_id = uuid.uuid4()
    tenants = []
    for name in ("a", "b"):
        owner = await people.new()
        workspace = await people.workspace(owner)
        async with owner_engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "insert into foundation_documents"
                    " (workspace_id, id, kind, title, content, created_by, updated_by)"
                    " values (:w, :id, 'brand', :t, cast(:c as jsonb), :u, :u)"
                ),
                {
                    "w": workspace,
                    "id": shared_id,
                    "t": name,
                    "u": owner.id,
                    "c": msgspec.json.encode({"tenant": name}).decode(),
                },
            )
        tenants.append((name, owner, workspace))
    for _ in range(3):
        for name, owner, workspace in tenants:
            url = f"/v1/workspaces/{workspace}/foundation/{shared_id}"
            body = (await client.get(url, headers=owner.headers)).json()
            assert (body["title"], body["content"]) == (name, {"tenant": name})
    (_, owner_a, _), (_, _, workspace_b) = tenants
    stolen = await client.get(
        f"/v1/workspaces/{workspace_b}/foundation/{shared_id}", headers=owner_a.headers
    )
    assert stolen.status_code == 404


def _cache_errors() -> float:
    return sum(
        REGISTRY.get_sample_value(
            "keel_cache_requests_total", {"namespace": namespace, "result": "error"}
        )
        or 0
        for namespace in ("members", "foundation")
    )


async def test_reads_keep_answering_while_redis_is_stopped(
    settings: Settings, people: People, tmp_path: Path
) -> None:
    redis = EmbeddedRedis(tmp_path, persist=False)
    own_settings = msgspec.structs.replace(settings, redis_url=redis.start(), redis_cluster=False)
    try:
        async with AsyncTestClient(create_app(own_settings)) as client:
            people = People(client)
            owner = await people.new()
            workspace = await people.workspace(owner)
            document = await people.document(workspace, owner, BRAND)
            url = f"/v1/workspaces/{workspace}/foundation/{document}"
            assert (await client.get(url, headers=owner.headers)).status_code == 200

            redis.stop()
            errors = _cache_errors()
            for title in ("down 1", "down 2"):
                patched = await client.patch(url, json={"title": title}, headers=owner.headers)
                assert patched.status_code == 200
                read = await client.get(url, headers=owner.headers)
                assert (read.status_code, read.json()["title"]) == (200, title)
            assert _cache_errors() > errors
            assert (await client.get("/readyz")).status_code == 503

            redis.start()
            for _ in range(2):
                read = await client.get(url, headers=owner.headers)
                assert (read.status_code, read.json()["title"]) == (200, "down 2")
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/v1/me", headers=bearer(owner.id))).status_code == 200
    finally:
        redis.stop()


async def test_metrics_are_exposed(client: httpx.AsyncClient, people: People) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    url = f"/v1/workspaces/{workspace}/foundation/{await people.document(workspace, owner, BRAND)}"
    await client.get(url, headers=owner.headers)
    metrics = (await client.get("/metrics")).text
    for name in (
        "keel_cache_requests_total",
        "keel_cache_loader_seconds_bucket",
        "keel_request_duration_seconds_bucket",
        "keel_requests_total",
        "keel_requests_in_progress",
        "keel_db_query_seconds_bucket",
        'path="/v1/workspaces/{workspace_id}/foundation/{document_id}"',
    ):
        assert name in metrics, name
