"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from dishka.integrations.litestar import FromDishka
from litestar import Response, get
from litestar.openapi import ResponseSpec
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.redis.client import RedisClient
from entrypoints.http.schemas import Health

CHECK_TIMEOUT_S = 2.0
RETRY_AFTER_S = 1  # as every 503 of the API says


@get("/healthz", tags=["health"], sync_to_thread=False)
def healthz() -> Health:
    return Health(status="ok")


@get(
    "/readyz",
    tags=["health"],
    responses={
        503: ResponseSpec(
            Health, description="Postgres or Redis does not answer; Retry-After says when to ask"
        )
    },
)
async def readyz(
    engine: FromDishka[AsyncEngine], redis: FromDishka[RedisClient]
) -> Response[Health]:
    checks = dict(
        zip(
            ("postgres", "redis"),
            await asyncio.gather(_check(_postgres(engine)), _check(redis.ping())),
            strict=True,
        )
    )
    ready = all(result == "ok" for result in checks.values())
    return Response(
        Health(status="ready" if ready else "unavailable", checks=checks),
        status_code=200 if ready else 503,
        headers=None if ready else {"Retry-After": str(RETRY_AFTER_S)},
    )


async def _postgres(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(sa.text("select 1"))


async def _check(probe: object) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_S)  # type: ignore[arg-type]
    except Exception as error:  # any failure means "not ready"; the reason is reported
        return f"down: {type(error).__name__}"
    return "ok"
