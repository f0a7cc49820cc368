"""Hostile encodings in every body and every query parameter: a clear 4xx
problem document, never a 500, never a request half understood.

Every request body of the API (the tenant matrix's, and creating a
workspace) is sent with each of its fields given twice (with different
values), with bytes that are not UTF-8 inside a string, nested past the
limit and past the decoder's depth, and larger than the body limit. Every
query parameter the OpenAPI document lists is sent twice, and with
percent-encoded bytes that are not UTF-8. (NUL and lone surrogates in every
field: test_input_classes.py; random values: test_input_fuzz.py.)

Found when this was written: a key given twice in a body was taken, the
last value winning (`{"name": "a", "name": "b"}` made a workspace "b", also
inside `content`, a task's `input`, a UI-state value and `contains`); a
query parameter given twice was taken too (one value of the two, silently),
and `?kind=%ff%fe` on the foundation list ran a query for U+FFFD instead of
saying the parameter was not UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import People
from tests.security.test_tenant_matrix import (
    MATRIX,
    UI_KEY,
    UI_STATE,
    WS,
    Cast,
    Route,
    _cast,
    _request,
)

BODIES = [route for route in MATRIX if route.body is not None] + [
    Route("POST", "/v1/workspaces", "viewer", {"name": "mine"})
]
FIELDS = [(route, field) for route in BODIES for field in route.body or {}]
LIMIT = 1024 * 1024
# Event streams do not end when the request is good; test_event_stream_attacks.py
# sends them bad parameters over a real socket.
STREAMS = ("/events",)


def _route(method: str, path: str) -> Route:
    return next(route for route in MATRIX if (route.method, route.path) == (method, path))


def _ids(cases: list[tuple[Route, str]]) -> list[str]:
    return [f"{route.method} {route.path} {field}" for route, field in cases]


@pytest.fixture(scope="module")
async def cast(client: httpx.AsyncClient, owner_engine: AsyncEngine) -> Cast:
    return await _cast(People(client), owner_engine)


def _problem(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    return body


async def _send_raw(client: httpx.AsyncClient, route: Route, cast: Cast, raw: bytes) -> Any:
    request = _request(route, cast)
    del request["json"]
    headers = {**cast.by_role["owner"].headers, "content-type": "application/json"}
    return await client.request(**request, content=raw, headers=headers)


def _body(route: Route, cast: Cast) -> dict[str, Any]:
    body: dict[str, Any] = _request(route, cast)["json"]
    return body


@pytest.mark.parametrize(("route", "field"), FIELDS, ids=_ids(FIELDS))
async def test_a_field_given_twice_is_a_400_naming_it(
    client: httpx.AsyncClient, cast: Cast, route: Route, field: str
) -> None:
    body = _body(route, cast)
    members = [f"{json.dumps(name)}: {json.dumps(value)}" for name, value in body.items()]
    members.append(f'{json.dumps(field)}: "other"')
    response = await _send_raw(client, route, cast, ("{" + ", ".join(members) + "}").encode())
    problem = _problem(response, 400)
    assert {"key": f"/{field}", "message": "is given more than once in one object"} in [
        {"key": e["key"], "message": e["message"]} for e in problem["errors"]
    ]


@pytest.mark.parametrize(
    ("route", "raw", "pointer"),
    [
        (BODIES[-1], b'{"name": "a", "name": "b"}', "/name"),
        (
            _route("POST", WS + "/foundation"),
            b'{"kind": "brand", "title": "t", "content": {"tone": 1, "deep": {"x": 1, "x": 2}},'
            b' "tags": []}',
            "/content/deep/x",
        ),
        (
            _route("POST", WS + "/tasks"),
            b'{"kind": "summarize", "input": {"text": "a", "text": "b"}}',
            "/input/text",
        ),
        (_route("PUT", UI_STATE), b'[{"open": true, "open": false}]', "/0/open"),
    ],
    ids=["top level", "inside content", "inside a task's input", "inside a UI-state value"],
)
async def test_a_key_given_twice_anywhere_in_a_body_is_named_by_its_pointer(
    client: httpx.AsyncClient, cast: Cast, route: Route, raw: bytes, pointer: str
) -> None:
    problem = _problem(await _send_raw(client, route, cast, raw), 400)
    assert [e["key"] for e in problem["errors"]] == [pointer]


async def test_a_key_given_twice_in_contains_is_a_400(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    response = await client.get(
        f"/v1/workspaces/{cast.workspace}/foundation",
        params={"contains": '{"tone": "warm", "tone": "cold"}'},
        headers=cast.by_role["owner"].headers,
    )
    assert "/tone" in _problem(response, 400)["detail"]


@pytest.mark.parametrize("route", BODIES, ids=lambda r: f"{r.method} {r.path}")
async def test_bytes_that_are_not_utf8_are_a_400(
    client: httpx.AsyncClient, cast: Cast, route: Route
) -> None:
    body = json.dumps(_body(route, cast)).encode()
    for bad in (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"):
        raw = body.replace(b'"', b'"' + bad, 2) if body.startswith(b"{") else b'"' + bad + b'"'
        _problem(await _send_raw(client, route, cast, raw), 400)


@pytest.mark.parametrize("route", BODIES, ids=lambda r: f"{r.method} {r.path}")
async def test_nesting_past_the_limit_or_the_decoder_is_a_400(
    client: httpx.AsyncClient, cast: Cast, route: Route
) -> None:
    first = next(iter(route.body or {}))
    for depth in (33, 5_000, 100_000):
        nested = '{"a": ' * depth + "1" + "}" * depth
        body = {**_body(route, cast)}
        raw = json.dumps(body).replace(json.dumps(body[first]), nested, 1).encode()
        _problem(await _send_raw(client, route, cast, raw), 400, 413)


@pytest.mark.parametrize("route", BODIES, ids=lambda r: f"{r.method} {r.path}")
async def test_a_body_over_the_limit_is_a_413(
    client: httpx.AsyncClient, cast: Cast, route: Route
) -> None:
    first = next(iter(route.body or {}))
    raw = json.dumps({**_body(route, cast), first: "x" * LIMIT}).encode()
    _problem(await _send_raw(client, route, cast, raw), 413)


async def _query_parameters(client: httpx.AsyncClient, cast: Cast) -> list[tuple[str, str, str]]:
    schema = (await client.get("/schema/openapi.json")).json()
    names = {
        "workspace_id": cast.workspace,
        "document_id": cast.document,
        "task_id": cast.task,
        "user_id": cast.target.id,
        "key": UI_KEY,
    }
    return [
        (method.upper(), path.format(**names), parameter["name"])
        for path, operations in schema["paths"].items()
        if not path.endswith(STREAMS)
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    ]


async def test_every_query_parameter_given_twice_is_a_400_naming_it(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    parameters = await _query_parameters(client, cast)
    assert len(parameters) >= 15
    for method, path, name in parameters:
        response = await client.request(
            method, f"{path}?{name}=1&{name}=2", json=1, headers=cast.by_role["owner"].headers
        )
        problem = _problem(response, 400)
        assert {"key": name, "message": "is given more than once", "source": "query"} in problem[
            "errors"
        ], (method, path)


async def test_every_query_parameter_that_is_not_utf8_is_a_400_naming_it(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    for method, path, name in await _query_parameters(client, cast):
        for bad in ("%ff", "a%c3%28", "%ed%a0%80"):
            response = await client.request(
                method, f"{path}?{name}={bad}", json=1, headers=cast.by_role["owner"].headers
            )
            problem = _problem(response, 400)
            assert name in [e["key"] for e in problem["errors"]], (method, path, bad)
