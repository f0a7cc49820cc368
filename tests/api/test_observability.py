"""Request ids, the access log, query timing and slow-query logs."""

from __future__ import annotations

import httpx
import sqlalchemy as sa
import structlog
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from adapters.postgres.database import create_engine
from adapters.postgres.observability import instrument
from tests.conftest import Database, People


async def test_request_ids_are_kept_or_made(client: httpx.AsyncClient) -> None:
    kept = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    trailing = await client.get("/healthz", headers={"X-Request-ID": "abc\n"})
    assert trailing.headers["x-request-id"] != "abc\n"
    hostile = await client.get("/healthz", headers={"X-Request-ID": "a\\" * 10})
    assert hostile.headers["x-request-id"] != "a\\" * 10
    assert made.headers["x-request-id"] != hostile.headers["x-request-id"]


async def test_one_access_line_per_request_with_its_context(
    client: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    with capture_logs([structlog.contextvars.merge_contextvars]) as logs:
        response = await client.get(
            f"/v1/workspaces/{workspace}/members",
            headers={**owner.headers, "X-Request-ID": "trace-me"},
        )
    assert response.status_code == 200
    [line] = [entry for entry in logs if entry["event"] == "request"]
    assert line["request_id"] == "trace-me"
    assert line["route"] == "/v1/workspaces/{workspace_id}/members"
    assert line["status"] == 200
    assert line["user_id"] == str(owner.id)
    assert line["workspace_id"] == str(workspace)
    assert line["duration_ms"] > 0


async def test_slow_queries_are_logged_without_values(database: Database) -> None:
    engine = create_engine(database.owner_url, pool_size=1)
    instrument(engine, slow_ms=0)
    before = REGISTRY.get_sample_value("keel_db_query_seconds_count") or 0
    try:
        with (
            capture_logs([structlog.contextvars.merge_contextvars]) as logs,
            structlog.contextvars.bound_contextvars(task_id="t-1"),
        ):
            async with engine.connect() as conn:
                await conn.execute(
                    sa.text("select count(*)   from users\n where email = :secret"),
                    {"secret": "ceo@tenant.example"},
                )
    finally:
        await engine.dispose()
    slow = [entry for entry in logs if entry["event"] == "slow query"]
    assert slow, logs
    assert slow[-1]["sql"] == "select count(*) from users where email = $1"
    assert "ceo@tenant.example" not in str(logs)
    assert slow[-1]["task_id"] == "t-1"
    assert (REGISTRY.get_sample_value("keel_db_query_seconds_count") or 0) > before


async def test_refusals_and_unknown_routes_have_request_ids_log_lines_and_metrics(
    client: httpx.AsyncClient,
) -> None:
    with capture_logs([structlog.contextvars.merge_contextvars]) as logs:
        refused = await client.get("/v1/me", headers={"X-Request-ID": "no-token"})
        unknown = await client.get("/v1/nowhere", headers={"X-Request-ID": "lost"})
    assert (refused.status_code, refused.headers["x-request-id"]) == (401, "no-token")
    assert (unknown.status_code, unknown.headers["x-request-id"]) == (404, "lost")
    lines = {entry["request_id"]: entry for entry in logs if entry["event"] == "request"}
    assert (lines["no-token"]["status"], lines["no-token"]["route"]) == (401, "/v1/me")
    assert lines["lost"]["status"] == 404
    metrics = (await client.get("/metrics")).text
    assert 'path="/v1/me",status_code="401"' in metrics
