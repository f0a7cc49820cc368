"""`keel doctor --api URL`: a running API, seen from outside. It is ready
(`/readyz`), it refuses a request without a token (401 with
`WWW-Authenticate: Bearer`), it describes itself (`/schema/openapi.json`, an
OpenAPI 3.1 document with Keel's routes), and `/metrics` has the series
docs/operations.md documents."""

from __future__ import annotations

import httpx

from entrypoints.doctor.report import Check, fail, ok

SERIES = (
    "keel_requests_total",
    "keel_request_duration_seconds",
    "keel_requests_in_progress",
    "keel_db_query_seconds",
    "keel_cache_requests",
    "keel_hot_reads_total",
    "keel_event_listeners",
)


async def api_checks(base: str) -> list[Check]:
    try:
        async with httpx.AsyncClient(base_url=base.rstrip("/"), timeout=5.0) as client:
            return [
                await _ready(client),
                await _refuses(client),
                await _describes(client),
                await _measures(client),
            ]
    except httpx.HTTPError as error:
        return [fail("api.reachable", f"cannot reach {base} ({error}); check the URL.")]


async def _ready(client: httpx.AsyncClient) -> Check:
    answer = await client.get("/readyz")
    if answer.status_code == 200:
        return ok("api.ready", "/readyz: Postgres and Redis answer the API.")
    return fail("api.ready", f"/readyz answered {answer.status_code}: {answer.text[:200]}")


async def _refuses(client: httpx.AsyncClient) -> Check:
    answer = await client.get("/v1/me")
    challenge = answer.headers.get("WWW-Authenticate", "")
    if answer.status_code == 401 and challenge.startswith("Bearer"):
        return ok("api.authentication", "a request without a token is refused (401, Bearer).")
    return fail(
        "api.authentication",
        f"a request without a token answered {answer.status_code}"
        f" (WWW-Authenticate: {challenge or 'none'}); this is not Keel's API, or a proxy"
        " in front of it answers for it.",
    )


async def _describes(client: httpx.AsyncClient) -> Check:
    answer = await client.get("/schema/openapi.json")
    try:
        document = answer.json()
    except ValueError:
        document = None
    if (
        isinstance(document, dict)
        and str(document.get("openapi", "")).startswith("3.1")
        and "/v1/me" in document.get("paths", {})
    ):
        return ok("api.openapi", "/schema/openapi.json is an OpenAPI 3.1 document of Keel's API.")
    return fail("api.openapi", f"/schema/openapi.json answered {answer.status_code} without it.")


async def _measures(client: httpx.AsyncClient) -> Check:
    answer = await client.get("/metrics")
    missing = [name for name in SERIES if name not in answer.text]
    if answer.status_code == 200 and not missing:
        return ok("api.metrics", f"/metrics has the {len(SERIES)} documented series.")
    return fail(
        "api.metrics",
        f"/metrics answered {answer.status_code}, without {', '.join(missing) or 'a body'}.",
    )
