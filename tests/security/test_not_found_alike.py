"""Another tenant's id answers exactly like an id that does not exist.

For every workspace-scoped route and method of the tenant matrix, an owner of
workspace A sends the request twice: naming workspace B and B's objects, and
naming ids nobody holds; then once more inside A, naming B's member, document,
task or dead letter, and a missing one. Each pair must get the same status,
the same headers and the same body (ids aside): a 404 that reveals nothing
of what exists elsewhere. Timing is left out (no timing asserts in tests).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import People, Person
from tests.security.test_tenant_matrix import MATRIX, Cast, Route, _cast, _request

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Differ by request by design: compared by name only.
VOLATILE_HEADERS = {"date", "x-request-id", "ratelimit-remaining", "ratelimit-reset"}
# Ids of objects inside a workspace. Not a UI-state key (the caller's own name, not
# another tenant's id), nor the user added by POST members (any user may be added).
INNER_ID = re.compile(r"\{(user_id|document_id|task_id)\}")


def _nobody() -> Person:
    return Person(uuid.uuid4(), {})


def _missing(workspace: uuid.UUID, model: Cast) -> Cast:
    """A cast whose every id (but the workspace's, given) is held by nothing."""
    return replace(
        model,
        workspace=workspace,
        target=_nobody(),
        newcomer=_nobody(),
        document=str(uuid.uuid4()),
        task=str(uuid.uuid4()),
        dead_letter=str(uuid.uuid4()),
    )


def _shape(response: httpx.Response) -> tuple[Any, ...]:
    headers = sorted(
        (name, "<varies>" if name in VOLATILE_HEADERS else UUID.sub("<id>", value))
        for name, value in response.headers.items()
    )
    return response.status_code, headers, UUID.sub("<id>", response.text)


@pytest.fixture(scope="module")
async def casts(client: httpx.AsyncClient, owner_engine: AsyncEngine) -> tuple[Cast, Cast]:
    """Workspaces A and B, each with its cast (module-wide: every request here is
    refused, so nothing changes between the tests)."""
    people = People(client)
    return await _cast(people, owner_engine), await _cast(people, owner_engine)


async def _send(client: httpx.AsyncClient, route: Route, cast: Cast, caller: Person) -> Any:
    return _shape(await client.request(**_request(route, cast), headers=caller.headers))


@pytest.mark.parametrize("route", MATRIX, ids=lambda r: f"{r.method} {r.path}")
async def test_another_workspace_answers_like_a_missing_one(
    client: httpx.AsyncClient, casts: tuple[Cast, Cast], route: Route
) -> None:
    mine, theirs = casts
    caller = mine.by_role["owner"]
    foreign = await _send(client, route, theirs, caller)
    missing = await _send(client, route, _missing(uuid.uuid4(), theirs), caller)
    assert foreign[0] == 404, foreign
    assert foreign == missing


INNER = [
    route
    for route in MATRIX
    if INNER_ID.search(route.path) or (route.body and "{task}" in route.body.values())
]


@pytest.mark.parametrize("route", INNER, ids=lambda r: f"{r.method} {r.path}")
async def test_another_workspaces_object_answers_like_a_missing_one(
    client: httpx.AsyncClient, casts: tuple[Cast, Cast], route: Route
) -> None:
    """Inside A, with A's owner: B's object by its id, and an id nobody holds."""
    mine, theirs = casts
    caller = mine.by_role["owner"]
    foreign = await _send(client, route, replace(theirs, workspace=mine.workspace), caller)
    missing = await _send(client, route, _missing(mine.workspace, theirs), caller)
    assert foreign[0] == 404, foreign
    assert foreign == missing
