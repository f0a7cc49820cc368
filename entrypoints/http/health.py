"""Liveness and readiness probes (no authentication).

Readiness asks each HealthProbe the composition root gives (Postgres, Redis)."""

from __future__ import annotations

import asyncio

from dishka.integrations.litestar import FromDishka
from litestar import Response, get
from litestar.openapi import ResponseSpec

from domain.ports import HealthProbe
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
async def readyz(probes: FromDishka[list[HealthProbe]]) -> Response[Health]:
    results = await asyncio.gather(*(_check(probe) for probe in probes))
    checks = {probe.name: result for probe, result in zip(probes, results, strict=True)}
    ready = all(result == "ok" for result in checks.values())
    return Response(
        Health(status="ready" if ready else "unavailable", checks=checks),
        status_code=200 if ready else 503,
        headers=None if ready else {"Retry-After": str(RETRY_AFTER_S)},
    )


async def _check(probe: HealthProbe) -> str:
    try:
        await asyncio.wait_for(probe.ping(), CHECK_TIMEOUT_S)
    except Exception as error:  # any failure means "not ready"; the reason is reported
        return f"down: {type(error).__name__}"
    return "ok"
