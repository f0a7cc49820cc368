"""Reference endpoints for bench.cache and bench.http, served by one uvicorn process:

- GET /constant      a bare Litestar handler returning a constant;
- GET /redis-get     a bare handler doing one Redis GET of a 2 KB value: the
                     physical ceiling of a cached read;
- GET /asyncpg-rls   one raw asyncpg transaction in Keel's shape: switch to
                     keel_app and set the tenant variables in one round trip,
                     read the document under RLS, commit (no SQLAlchemy);
- GET /asyncpg-list  the same transaction around Keel's keyset page query
                     (kind = $2, order by id, limit 51);
- PATCH /asyncpg-patch/{id}  with If-Match: the version-checked update that
                     bumps the version and the revision row, in one transaction;
- POST /asyncpg-task the task row (its own outbox) and the NOTIFY, in one
                     transaction, answered 202.

JSONB is decoded with json.loads, as Keel's engine does.

Configured by BENCH_REDIS_URL, BENCH_DATABASE_URL, BENCH_USER, BENCH_WORKSPACE,
BENCH_DOCUMENT.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from litestar import Litestar, Response, get, patch, post
from litestar.params import HeaderParameter
from redis.asyncio import Redis
from uuid6 import uuid7

REDIS_KEY = "bench:2kb"
_state: dict[str, Any] = {}

_READ = """
select workspace_id, id, kind, title, content, tags, version
  from foundation_documents where workspace_id = $1 and id = $2
"""
_COLUMNS = (
    "workspace_id, id, kind, title, content, tags, version, created_by, updated_by,"
    " created_at, updated_at"
)
_LIST = f"""
select {_COLUMNS} from foundation_documents
 where workspace_id = $1 and kind = $2 order by id limit 51
"""
_UPDATE = f"""
update foundation_documents set title = $4, version = version + 1, updated_by = $5,
       updated_at = now()
 where workspace_id = $1 and id = $2 and version = $3 returning {_COLUMNS}
"""
_REVISION = """
insert into foundation_revisions (workspace_id, id, document_id, version, action, changed_by,
                                  changes)
values ($1, $2, $3, $4, 'updated', $5, $6)
"""
_TASK = """
insert into tasks (workspace_id, id, kind, status, input, created_by, priority, max_attempts)
values ($1, $2, 'generate', 'queued', $3, $4, 0, 5) returning *
"""
_SWITCH = (
    "select set_config('role', 'keel_app', true),"
    " set_config('app.user_id', $1, true), set_config('app.workspace_id', $2, true)"
)


async def _json_codec(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


@asynccontextmanager
async def lifespan(_app: Litestar) -> AsyncIterator[None]:
    redis = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    await redis.set(REDIS_KEY, b"x" * 2048)
    pool = await asyncpg.create_pool(
        os.environ["BENCH_DATABASE_URL"], min_size=10, max_size=10, init=_json_codec
    )
    _state.update(redis=redis, pool=pool)
    yield
    await pool.close()
    await redis.aclose()


@get("/constant", sync_to_thread=False)
def constant() -> dict[str, str]:
    return {"status": "ok"}


@get("/redis-get")
async def redis_get() -> bytes:
    value: bytes = await _state["redis"].get(REDIS_KEY)
    return value


@get("/asyncpg-rls")
async def asyncpg_rls() -> dict[str, Any]:
    async with _state["pool"].acquire() as conn, conn.transaction():
        await conn.execute(_SWITCH, os.environ["BENCH_USER"], os.environ["BENCH_WORKSPACE"])
        row = await conn.fetchrow(
            _READ, os.environ["BENCH_WORKSPACE"], os.environ["BENCH_DOCUMENT"]
        )
    assert row is not None
    return dict(row)


@get("/asyncpg-list")
async def asyncpg_list(kind: str) -> dict[str, Any]:
    async with _state["pool"].acquire() as conn, conn.transaction():
        await conn.execute(_SWITCH, os.environ["BENCH_USER"], os.environ["BENCH_WORKSPACE"])
        rows = await conn.fetch(_LIST, os.environ["BENCH_WORKSPACE"], kind)
    return {"items": [dict(row) for row in rows[:50]], "next_cursor": None}


@patch("/asyncpg-patch/{document_id:uuid}")
async def asyncpg_patch(
    document_id: UUID,
    data: dict[str, Any],
    if_match: Annotated[str, HeaderParameter(name="If-Match")],
) -> Response[dict[str, Any]]:
    user, workspace = os.environ["BENCH_USER"], os.environ["BENCH_WORKSPACE"]
    async with _state["pool"].acquire() as conn, conn.transaction():
        await conn.execute(_SWITCH, user, workspace)
        row = await conn.fetchrow(
            _UPDATE, workspace, document_id, int(if_match.strip('"')), data["title"], user
        )
        if row is None:
            return Response({"detail": "changed"}, status_code=412)
        await conn.execute(_REVISION, workspace, uuid7(), document_id, row["version"], user, data)
    return Response(dict(row), headers={"ETag": f'"{row["version"]}"'})


@post("/asyncpg-task", status_code=202)
async def asyncpg_task(data: dict[str, Any]) -> dict[str, Any]:
    user, workspace = os.environ["BENCH_USER"], os.environ["BENCH_WORKSPACE"]
    async with _state["pool"].acquire() as conn, conn.transaction():
        await conn.execute(_SWITCH, user, workspace)
        row = await conn.fetchrow(_TASK, workspace, uuid7(), data["input"], user)
        await conn.execute("notify keel_tasks")
    assert row is not None
    return {"id": row["id"], "status": row["status"], "created_at": row["created_at"]}


app = Litestar(
    route_handlers=[constant, redis_get, asyncpg_rls, asyncpg_list, asyncpg_patch, asyncpg_task],
    lifespan=[lifespan],
)
