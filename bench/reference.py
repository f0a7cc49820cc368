"""Reference endpoints for the cache benchmark, served by one uvicorn process:

- GET /constant      a bare Litestar handler returning a constant;
- GET /redis-get     a bare handler doing one Redis GET of a 2 KB value: the
                     physical ceiling of a cached read;
- GET /asyncpg-rls   one raw asyncpg transaction in Keel's shape: switch to
                     keel_app and set the tenant variables in one round trip,
                     read the document under RLS, commit (no SQLAlchemy).

Configured by BENCH_REDIS_URL, BENCH_DATABASE_URL, BENCH_USER, BENCH_WORKSPACE,
BENCH_DOCUMENT.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar, get
from redis.asyncio import Redis

REDIS_KEY = "bench:2kb"
_state: dict[str, Any] = {}

_READ = """
select workspace_id, id, kind, title, content, tags, version
  from foundation_documents where workspace_id = $1 and id = $2
"""


@asynccontextmanager
async def lifespan(_app: Litestar) -> AsyncIterator[None]:
    redis = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    await redis.set(REDIS_KEY, b"x" * 2048)
    pool = await asyncpg.create_pool(os.environ["BENCH_DATABASE_URL"], min_size=10, max_size=10)
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
        await conn.execute(
            "select set_config('role', 'keel_app', true),"
            " set_config('app.user_id', $1, true), set_config('app.workspace_id', $2, true)",
            os.environ["BENCH_USER"],
            os.environ["BENCH_WORKSPACE"],
        )
        row = await conn.fetchrow(
            _READ, os.environ["BENCH_WORKSPACE"], os.environ["BENCH_DOCUMENT"]
        )
    assert row is not None
    return dict(row)


app = Litestar(route_handlers=[constant, redis_get, asyncpg_rls], lifespan=[lifespan])
