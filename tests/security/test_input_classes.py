"""Issue 17, classes 2 and 9 (and 1 at the boundary): input Postgres or Keel
cannot carry is refused where it enters, with a 400 problem that names the
field, never a 500.

Each test sends many members of its class: NUL in every text field that
reaches Postgres (bodies, queries, headers); If-Match values Python reads as
digits but Postgres does not, or that overflow the version's type; numbers
outside Keel's range; nesting past the limit; content under the limit as
compact JSON but over it as Postgres stores it; a kind with a trailing
newline. Members just inside each limit are accepted, so a test cannot pass
by refusing everything.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.uow import PgUnitOfWorkFactory
from domain.entities import Caller, FoundationDocument
from domain.errors import InvalidInputError
from domain.foundation import MAX_CONTENT_BYTES
from tests.conftest import People, Person, bearer

# The contract (SECURITY.md, "Keel's JSON"), written out so these tests read
# as it does and run against code that predates it.
MAX_DEPTH = 32
MAX_SAFE_INTEGER = 2**53 - 1

JSON = {"content-type": "application/json"}
DOC = {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}, "tags": ["core"]}


def _problem(response: httpx.Response, key: str) -> dict[str, Any]:
    """A 400 problem document whose `errors` name `key`."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    keys = [error["key"] for error in body.get("errors", [])]
    assert key in keys, (key, body)
    return body


async def _workspace(people: People) -> tuple[Person, str]:
    owner = await people.new()
    return owner, f"/v1/workspaces/{await people.workspace(owner)}"


def _nested(depth: int, leaf: str = "1") -> str:
    """JSON text of `depth` nested objects around `leaf`."""
    return '{"a":' * depth + leaf + "}" * depth


# -- NUL (and lone surrogates) in every text field of a body ------------------------

NUL_STRINGS = ["\x00", "a\x00", "\x00b", "a\x00b", "\x00" * 50]
DOC_FIELDS: list[tuple[str, Any, str]] = [
    ("title", lambda s: {**DOC, "title": s}, "/title"),
    ("kind", lambda s: {**DOC, "kind": "brand" + s}, "/kind"),
    ("content value", lambda s: {**DOC, "content": {"tone": s}}, "/content/tone"),
    ("content key", lambda s: {**DOC, "content": {"t" + s: 1}}, "/content/t" + "{s}"),
    ("nested value", lambda s: {**DOC, "content": {"a": [{"b": s}]}}, "/content/a/0/b"),
    ("tag", lambda s: {**DOC, "tags": ["ok", s]}, "/tags/1"),
]


@pytest.mark.parametrize("text", NUL_STRINGS)
@pytest.mark.parametrize(("field", "build", "key"), DOC_FIELDS, ids=[f[0] for f in DOC_FIELDS])
async def test_nul_in_any_document_field_is_a_400_naming_it(
    client: httpx.AsyncClient, people: People, text: str, field: str, build: Any, key: str
) -> None:
    owner, base = await _workspace(people)
    key = key.replace("{s}", text)
    body = build(text)
    _problem(await client.post(f"{base}/foundation", json=body, headers=owner.headers), key)
    created = await client.post(f"{base}/foundation", json=DOC, headers=owner.headers)
    one = f"{base}/foundation/{created.json()['id']}"
    patch = {name: body[name] for name in ("kind", "title", "content", "tags") if name in body}
    patch = {name: value for name, value in patch.items() if value != DOC[name]}
    _problem(await client.patch(one, json=patch, headers=owner.headers), key)


@pytest.mark.parametrize("text", NUL_STRINGS)
async def test_nul_in_workspace_names_and_task_input_is_a_400(
    client: httpx.AsyncClient, people: People, text: str
) -> None:
    owner, base = await _workspace(people)
    name = {"name": f"Acme{text}"}
    _problem(await client.post("/v1/workspaces", json=name, headers=owner.headers), "/name")
    _problem(await client.patch(base, json=name, headers=owner.headers), "/name")
    for body, key in (
        ({"kind": "summarize", "input": {"text": f"hello{text}"}}, "/input/text"),
        ({"kind": "generate", "input": {"prompt": f"hi{text}"}}, "/input/prompt"),
        ({"kind": "generate", "input": {f"prompt{text}": "hi"}}, f"/input/prompt{text}"),
    ):
        _problem(await client.post(f"{base}/tasks", json=body, headers=owner.headers), key)


async def test_a_lone_surrogate_is_a_400(client: httpx.AsyncClient, people: People) -> None:
    owner, base = await _workspace(people)
    for raw in ('"\\ud800"', '"a\\udfffb"', '"\\udc00\\ud800"'):
        body = '{"kind":"brand","title":' + raw + ',"content":{}}'
        response = await client.post(
            f"{base}/foundation", content=body, headers={**owner.headers, **JSON}
        )
        assert response.status_code == 400, response.text


# -- NUL in queries and headers -----------------------------------------------------

QUERIES = [
    ("foundation", "kind"),
    ("foundation", "tag"),
    ("foundation", "contains"),
    ("foundation", "cursor"),
    ("tasks", "cursor"),
    ("members", "cursor"),
    ("ui-state", "cursor"),
]


@pytest.mark.parametrize("text", NUL_STRINGS)
@pytest.mark.parametrize(("path", "name"), QUERIES)
async def test_nul_in_a_query_parameter_is_a_400_naming_it(
    client: httpx.AsyncClient, people: People, text: str, path: str, name: str
) -> None:
    owner, base = await _workspace(people)
    value = '{"a": "' + text + '"}' if name == "contains" else f"x{text}"
    response = await client.get(f"{base}/{path}", params={name: value}, headers=owner.headers)
    _problem(response, name)


async def test_a_json_escaped_nul_in_contains_is_a_400(
    client: httpx.AsyncClient, people: People
) -> None:
    owner, base = await _workspace(people)
    for contains in ('{"a": "\\u0000"}', '{"\\u0000": 1}', '{"a": ["x\\u0000y"]}'):
        response = await client.get(
            f"{base}/foundation", params={"contains": contains}, headers=owner.headers
        )
        _problem(response, "contains")


HEADER_VALUES = [b"a\x00", b"\x00", b"a\x01b", b"a\x1fb", b"a\x7f"]


@pytest.mark.parametrize("value", HEADER_VALUES)
async def test_control_characters_in_headers_are_a_400_naming_them(
    client: httpx.AsyncClient, people: People, value: bytes
) -> None:
    owner, base = await _workspace(people)
    task = {"kind": "summarize", "input": {"text": "hello"}}
    response = await client.post(
        f"{base}/tasks", json=task, headers={**owner.headers, "Idempotency-Key": value}
    )
    _problem(response, "idempotency-key")
    created = await client.post(f"{base}/foundation", json=DOC, headers=owner.headers)
    one = f"{base}/foundation/{created.json()['id']}"
    for name in ("If-Match", "If-None-Match"):
        response = await client.patch(
            one, json={"title": "x"}, headers={**owner.headers, name: b'"1' + value + b'"'}
        )
        _problem(response, name.lower())


# -- If-Match: digits to Python, not to Postgres; versions past their type -----------

IF_MATCH = [
    b'"\xb2"',  # ² (latin-1, as ASGI headers are read): str.isdigit() but not int()
    b'"\xb3"',
    b'"\xb9"',
    '"\uff11"'.encode(),  # full-width, Arabic-Indic, Devanagari digits
    '"٣"'.encode(),
    '"३"'.encode(),
    b'"1_000"',
    b'" 1"',
    b'"1 "',
    b'"+1"',
    b'"-1"',
    b'"1.0"',
    b'"0x1"',
    b'"1e3"',
    b'"2147483648"',  # past Postgres integer
    b'"9223372036854775808"',
    b'"' + b"9" * 100 + b'"',
    b'""',
    b'"1',
    b'1"',
]


@pytest.mark.parametrize("value", IF_MATCH)
async def test_if_match_that_is_not_a_version_is_a_400(
    client: httpx.AsyncClient, people: People, value: bytes
) -> None:
    owner, base = await _workspace(people)
    created = await client.post(f"{base}/foundation", json=DOC, headers=owner.headers)
    one = f"{base}/foundation/{created.json()['id']}"
    headers = {**owner.headers, "If-Match": value}
    _problem(await client.patch(one, json={"title": "x"}, headers=headers), "If-Match")
    _problem(await client.delete(one, headers=headers), "If-Match")
    current = {**owner.headers, "If-Match": '"1"'}
    assert (await client.patch(one, json={"title": "x"}, headers=current)).status_code == 200


# -- numbers outside Keel's range ---------------------------------------------------

OUT_OF_RANGE = [
    str(MAX_SAFE_INTEGER + 1),
    str(-MAX_SAFE_INTEGER - 1),
    str(2**63 - 1),
    str(2**63),
    str(2**64),
    str(-(2**63) - 1),
    "1" + "0" * 30,
    "-" + "9" * 300,
    "1e20",
    "1.5e300",
    "-1.7976931348623157e308",
    "9007199254740992.0",
]


@pytest.mark.parametrize("number", OUT_OF_RANGE)
async def test_numbers_outside_the_safe_range_are_a_400_naming_them(
    client: httpx.AsyncClient, people: People, number: str
) -> None:
    owner, base = await _workspace(people)
    headers = {**owner.headers, **JSON}
    for content, key in (
        ('{"n": ' + number + "}", "/content/n"),
        ('{"a": [1, {"b": ' + number + "}]}", "/content/a/1/b"),
    ):
        body = '{"kind":"brand","title":"t","content":' + content + "}"
        _problem(await client.post(f"{base}/foundation", content=body, headers=headers), key)
    state = await client.put(f"{base}/ui-state/panel", content="[" + number + "]", headers=headers)
    _problem(state, "/0")
    for priority in (2**64, -(2**64)):
        task = {"kind": "summarize", "input": {"text": "x"}, "priority": priority}
        response = await client.post(f"{base}/tasks", json=task, headers=owner.headers)
        assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "number", [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0, -1, 0.5, 1e-300, 5e-324, 1e15 + 0.5]
)
async def test_numbers_inside_the_range_round_trip(
    client: httpx.AsyncClient, people: People, number: float
) -> None:
    owner, base = await _workspace(people)
    body = {**DOC, "content": {"n": number, "list": [number]}}
    created = await client.post(f"{base}/foundation", json=body, headers=owner.headers)
    assert created.status_code == 201, created.text
    read = await client.get(f"{base}/foundation/{created.json()['id']}", headers=owner.headers)
    assert read.status_code == 200, read.text
    assert read.json()["content"] == body["content"]


# -- nesting ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100, 999, 1000, 3000, 5000, 100_000])
async def test_nesting_past_the_limit_is_a_400(
    client: httpx.AsyncClient, people: People, depth: int
) -> None:
    owner, base = await _workspace(people)
    headers = {**owner.headers, **JSON}
    body = '{"kind":"brand","title":"t","content":' + _nested(depth) + "}"
    response = await client.post(f"{base}/foundation", content=body, headers=headers)
    assert response.status_code == 400, response.text
    task = '{"kind":"summarize","input":{"text":' + _nested(depth, '"x"') + "}}"
    assert (await client.post(f"{base}/tasks", content=task, headers=headers)).status_code == 400
    if depth <= 3000:  # (httpx refuses longer URLs)
        query = {"contains": _nested(depth)}
        response = await client.get(f"{base}/foundation", params=query, headers=headers)
        _problem(response, "contains")
    state = await client.put(f"{base}/ui-state/panel", content=_nested(depth), headers=headers)
    assert state.status_code in (400, 413), state.text


async def test_nesting_at_the_limit_is_accepted(client: httpx.AsyncClient, people: People) -> None:
    owner, base = await _workspace(people)
    headers = {**owner.headers, **JSON}
    body = '{"kind":"brand","title":"t","content":' + _nested(MAX_DEPTH) + "}"
    created = await client.post(f"{base}/foundation", content=body, headers=headers)
    assert created.status_code == 201, created.text
    query = {"contains": _nested(MAX_DEPTH)}
    assert (
        await client.get(f"{base}/foundation", params=query, headers=headers)
    ).status_code == 200


# -- size, in the unit Postgres stores ----------------------------------------------


def _compact(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


async def _stored(engine: AsyncEngine, value: object) -> int:
    """The bytes Postgres stores for `value` as JSONB (what the schema's check measures)."""
    async with engine.connect() as conn:
        size = await conn.scalar(
            sa.text("select octet_length(cast(:v as jsonb)::text)"), {"v": json.dumps(value)}
        )
    assert isinstance(size, int)
    return size


def _padded(unit: object, per_item_compact: int) -> dict[str, Any]:
    """Content just under the limit as compact JSON, built from `unit` repeated."""
    count = (MAX_CONTENT_BYTES - 20) // per_item_compact
    return {"a": [unit] * count}


SIZE_MEMBERS = {
    "small ints": _padded(1, 2),
    "floats printed in full": _padded(1e-7, 6),
    "objects": _padded({"k": 1}, 8),
    "empty arrays": _padded([], 3),
    "strings": _padded("ab", 5),
}


@pytest.mark.parametrize("content", SIZE_MEMBERS.values(), ids=SIZE_MEMBERS.keys())
async def test_content_under_the_limit_compact_but_over_it_stored_is_a_400(
    client: httpx.AsyncClient, people: People, owner_engine: AsyncEngine, content: dict[str, Any]
) -> None:
    assert _compact(content) <= MAX_CONTENT_BYTES < await _stored(owner_engine, content)
    owner, base = await _workspace(people)
    body = json.dumps({**DOC, "content": content}, separators=(",", ":"))
    response = await client.post(
        f"{base}/foundation", content=body, headers={**owner.headers, **JSON}
    )
    _problem(response, "/content")


async def test_content_of_exactly_the_stored_limit_is_accepted(
    client: httpx.AsyncClient, people: People, owner_engine: AsyncEngine
) -> None:
    overhead = await _stored(owner_engine, {"a": ""})
    content = {"a": "x" * (MAX_CONTENT_BYTES - overhead)}
    assert await _stored(owner_engine, content) == MAX_CONTENT_BYTES
    owner, base = await _workspace(people)
    created = await client.post(
        f"{base}/foundation", json={**DOC, "content": content}, headers=owner.headers
    )
    assert created.status_code == 201, created.text
    async with owner_engine.connect() as conn:
        stored = await conn.scalar(
            sa.text("select octet_length(content::text) from foundation_documents where id = :d"),
            {"d": uuid.UUID(created.json()["id"])},
        )
    assert stored == MAX_CONTENT_BYTES
    bigger = {"a": content["a"] + "x"}
    _problem(
        await client.post(
            f"{base}/foundation", json={**DOC, "content": bigger}, headers=owner.headers
        ),
        "/content",
    )


# -- kind: `$` matches before a final newline ---------------------------------------


@pytest.mark.parametrize("kind", ["brand\n", "a\n", "brand.v2\n", "brand\n\n", "\nbrand"])
async def test_a_kind_with_a_newline_is_a_400(
    client: httpx.AsyncClient, people: People, kind: str
) -> None:
    owner, base = await _workspace(people)
    response = await client.post(
        f"{base}/foundation", json={**DOC, "kind": kind}, headers=owner.headers
    )
    _problem(response, "/kind")
    created = await client.post(f"{base}/foundation", json=DOC, headers=owner.headers)
    one = f"{base}/foundation/{created.json()['id']}"
    _problem(await client.patch(one, json={"kind": kind}, headers=owner.headers), "/kind")


# -- behind the boundary: what Postgres refuses is still a 400 ------------------------


def _add(**changes: Any) -> Any:
    async def write(uow: Any, workspace: uuid.UUID, user: uuid.UUID) -> None:
        fields = {**DOC, **changes}
        draft = FoundationDocument(
            workspace, uuid.uuid4(), **fields, version=1, created_by=user, updated_by=user
        )
        await uow.foundation.add(draft)

    return write


def _rename(name: str) -> Any:
    async def write(uow: Any, workspace: uuid.UUID, user: uuid.UUID) -> None:
        await uow.workspaces.rename(workspace, name)

    return write


async def _delete_version(uow: Any, workspace: uuid.UUID, user: uuid.UUID) -> None:
    await uow.foundation.delete(workspace, uuid.uuid4(), 2**31, user)


BEHIND_THE_BOUNDARY = {
    "NUL in the title": _add(title="a\x00b"),
    "NUL in a tag": _add(tags=["a\x00"]),
    "a lone surrogate in the title": _add(title="a\ud800"),
    "NUL in content": _add(content={"a": "\x00"}),
    "NUL in a content key": _add(content={"\x00": 1}),
    "a kind with a newline": _add(kind="brand\n"),
    "content over the limit as stored": _add(content={"a": [1] * 90_000}),
    "an empty title": _add(title=""),
    "51 tags": _add(tags=[str(n) for n in range(51)]),
    "NUL in a workspace name": _rename("a\x00b"),
    "an empty workspace name": _rename(""),
    "a version past int32": _delete_version,
}


@pytest.mark.parametrize("write", BEHIND_THE_BOUNDARY.values(), ids=BEHIND_THE_BOUNDARY.keys())
async def test_input_that_got_past_the_boundary_is_refused_by_postgres_as_a_400(
    people: People, engine: AsyncEngine, write: Any
) -> None:
    """The repositories called directly (as a bug at the boundary would): the
    database's or the driver's refusal is InvalidInputError (a 400), not a
    driver error (a 500)."""
    owner = await people.new()
    workspace = await people.workspace(owner)
    uow = PgUnitOfWorkFactory(engine)(Caller(owner.id, workspace))

    async def attempt() -> None:
        async with uow:
            await write(uow, workspace, owner.id)

    with pytest.raises(InvalidInputError):
        await attempt()


# -- a token's claims reach Postgres too --------------------------------------------


@pytest.mark.parametrize("email", ["a\x00b@example.test", "\x00", "\ud800@example.test"])
async def test_an_email_claim_postgres_cannot_store_is_a_4xx_not_a_500(
    client: httpx.AsyncClient, email: str
) -> None:
    headers = bearer(uuid.uuid4(), email)
    for _ in range(2):  # (the second time, the profile cache must not hide it)
        response = await client.get("/v1/me", headers=headers)
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/problem+json"
