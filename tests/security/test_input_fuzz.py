"""Issue 17, class 2: no input reaches a 5xx.

Hypothesis sends every body and header field of the API (and the query
parameters beside them) values drawn from valid ones and from what breaks
things: any Unicode (NUL, lone surrogates, newlines), integers of any size,
floats, JSON nested up to past the decoders' depth, unknown fields, wrong
types, raw bytes that are not JSON, arbitrary header bytes. Whatever comes
back is below 500, and every refusal is a problem document.

The event streams (SSE) are left out: a valid request opens a stream that
does not end. KEEL_FUZZ_EXAMPLES sets the examples per operation (default
50: the whole file runs in about ten seconds).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import People, Person

EXAMPLES = int(os.environ.get("KEEL_FUZZ_EXAMPLES", "50"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NASTY_TEXT = [
    "\x00",
    "a\x00b",
    "\x00\x00",
    "text\x00",
    "brand\n",
    "\ud800",
    "\udfff x",
    "",
    " ",
    "x" * 70,
    "x" * 400,
    "²",
    "\uff11",
    "\u202e",
    "🙂",
]
NASTY_INTEGERS = [2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**400)]

texts = st.one_of(st.text(max_size=30), st.sampled_from(NASTY_TEXT))
integers = st.one_of(st.integers(), st.sampled_from(NASTY_INTEGERS))
scalars = st.one_of(
    st.none(), st.booleans(), integers, st.floats(allow_nan=False, allow_infinity=False), texts
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
    ),
    max_leaves=25,
)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@st.composite
def json_texts(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> str:
    """JSON text of a value of the field's own kind (often nasty itself), of any
    JSON value, or of one nested around the depth limits (json.dumps would recurse)."""
    kind = draw(st.integers(0, 9))
    if kind < 2:
        return _nested(draw(st.sampled_from([31, 32, 33, 900, 1000, 3000])))
    return json.dumps(draw(json_values if kind < 5 else valid))


@st.composite
def bodies(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> bytes:
    """A JSON object with most of `fields`, maybe an unknown one, or bytes that
    are not JSON at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=60))
    present = [name for name in sorted(fields) if draw(st.integers(0, 4)) > 0]
    members = [f"{json.dumps(name)}: {draw(json_texts(fields[name]))}" for name in present]
    if draw(st.integers(0, 9)) == 0:
        members.append(f"{json.dumps(draw(texts))}: {draw(json_texts(json_values))}")
    return ("{" + ", ".join(members) + "}").encode()


header_values = st.one_of(
    st.sampled_from(['"1"', '"2"', "*", 'W/"1"', '"1", "2"', '"01"', "", " "]).map(str.encode),
    st.binary(max_size=40).filter(lambda value: b"\r" not in value and b"\n" not in value),
    texts.map(lambda text: text.encode("utf-8", "surrogatepass")),
)
query_values = st.one_of(texts, integers.map(str), json_texts(json_values))


@dataclass
class World:
    client: httpx.AsyncClient
    owner: Person
    workspace: str
    member: Person
    task: str

    async def document(self) -> str:
        response = await self.client.post(
            f"/v1/workspaces/{self.workspace}/foundation",
            json={"kind": "brand", "title": "Voice", "content": {"tone": "warm"}, "tags": []},
            headers=self.owner.headers,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest.fixture(scope="module")
async def world(client: httpx.AsyncClient) -> World:
    people = People(client)
    owner = await people.new()
    workspace = await people.workspace(owner)
    member = await people.join(workspace, owner, "member")
    task = await client.post(
        f"/v1/workspaces/{workspace}/tasks",
        json={"kind": "summarize", "input": {"text": "hello"}},
        headers=owner.headers,
    )
    return World(client, owner, str(workspace), member, str(task.json()["id"]))


def _never_5xx(response: httpx.Response) -> None:
    assert response.status_code < 500, (
        response.request.method,
        response.request.url,
        response.text,
    )
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text


@dataclass(frozen=True)
class Operation:
    method: str
    path: Callable[[World, str], str]  # (world, a fresh document id when asked) -> path
    body: dict[str, st.SearchStrategy[Any]] | None = None
    headers: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    needs_document: bool = False
    raw_body: bool = False


def _ws(tail: str = "") -> Callable[[World, str], str]:
    return lambda world, document: f"/v1/workspaces/{world.workspace}{tail}".replace(
        "{doc}", document
    )


LIST_QUERY = ("limit", "cursor")
DOCUMENT_FIELDS = {
    "kind": st.sampled_from(["brand", "audience.v2", "Brand", "brand\n"]),
    "title": texts,
    "content": st.dictionaries(texts, json_values, max_size=4),
    "tags": st.lists(texts, max_size=5),
}
OPERATIONS = {
    "create workspace": Operation("POST", lambda world, _: "/v1/workspaces", {"name": texts}),
    "rename workspace": Operation("PATCH", _ws(), {"name": texts}),
    "list workspaces": Operation("GET", lambda world, _: "/v1/workspaces", query=LIST_QUERY),
    "add member": Operation(
        "POST",
        _ws("/members"),
        {"user_id": st.uuids().map(str), "role": st.sampled_from(["member", "owner", "boss"])},
    ),
    "change role": Operation(
        "PATCH",
        lambda world, _: f"/v1/workspaces/{world.workspace}/members/{world.member.id}",
        {"role": st.sampled_from(["member", "viewer", "admin", "god", ""])},
    ),
    "list members": Operation("GET", _ws("/members"), query=LIST_QUERY),
    "create document": Operation("POST", _ws("/foundation"), DOCUMENT_FIELDS),
    "update document": Operation(
        "PATCH", _ws("/foundation/{doc}"), DOCUMENT_FIELDS, ("If-Match",), needs_document=True
    ),
    "delete document": Operation(
        "DELETE", _ws("/foundation/{doc}"), headers=("If-Match",), needs_document=True
    ),
    "read document": Operation(
        "GET", _ws("/foundation/{doc}"), headers=("If-None-Match",), needs_document=True
    ),
    "list documents": Operation(
        "GET", _ws("/foundation"), query=("kind", "tag", "contains", *LIST_QUERY)
    ),
    "create task": Operation(
        "POST",
        _ws("/tasks"),
        {
            "kind": st.sampled_from(["generate", "summarize", "other"]),
            "input": st.one_of(
                st.fixed_dictionaries({"prompt": texts}, optional={"use_foundation": scalars}),
                st.fixed_dictionaries({"text": texts}),
                st.dictionaries(texts, json_values, max_size=3),
            ),
            "priority": integers,
            "max_attempts": integers,
        },
        ("Idempotency-Key",),
    ),
    "list tasks": Operation("GET", _ws("/tasks"), query=("status", "kind", *LIST_QUERY)),
    "read task": Operation(
        "GET", lambda world, _: f"/v1/workspaces/{world.workspace}/tasks/{world.task}"
    ),
    "cancel task": Operation(
        "POST", lambda world, _: f"/v1/workspaces/{world.workspace}/tasks/{world.task}/cancel"
    ),
    "stream ticket": Operation(
        "POST", _ws("/stream-tickets"), {"task_id": st.one_of(st.uuids().map(str), texts)}
    ),
    "put ui state": Operation("PUT", _ws("/ui-state/panel"), {}, query=("ttl",), raw_body=True),
    "list ui state": Operation("GET", _ws("/ui-state"), query=LIST_QUERY),
}


@pytest.mark.parametrize("name", OPERATIONS)
@FUZZ
@given(data=st.data())
async def test_no_body_header_or_query_field_reaches_a_5xx(
    world: World, name: str, data: st.DataObject
) -> None:
    operation = OPERATIONS[name]
    document = await world.document() if operation.needs_document else ""
    headers = {**world.owner.headers, "content-type": "application/json"}
    for header in operation.headers:
        if data.draw(st.integers(0, 3), label=f"send {header}") > 0:
            headers[header] = data.draw(header_values, label=header)  # type: ignore[assignment]
    # Any other header, too: a name Keel does not read, with any value.
    if data.draw(st.integers(0, 3), label="extra header") == 0:
        headers["X-Fuzz"] = data.draw(header_values, label="X-Fuzz")  # type: ignore[assignment]
    params = {
        parameter: data.draw(query_values, label=parameter)
        for parameter in operation.query
        if data.draw(st.integers(0, 2), label=f"send {parameter}") > 0
    }
    content = None
    if operation.raw_body:
        content = data.draw(
            st.one_of(json_texts(json_values).map(str.encode), st.binary(max_size=60)),
            label="raw body",
        )
    elif operation.body is not None:
        content = data.draw(bodies(operation.body), label="body")
    # Encoded by hand: a lone surrogate goes out as the bytes UTF-8 would give it.
    query = "&".join(
        f"{name}={quote(value.encode('utf-8', 'surrogatepass'), safe='')}"
        for name, value in params.items()
    )
    path = operation.path(world, document) + (f"?{query}" if query else "")
    response = await world.client.request(operation.method, path, content=content, headers=headers)
    _never_5xx(response)
