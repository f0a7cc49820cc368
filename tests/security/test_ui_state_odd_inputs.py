"""Attacks on per-user UI state: odd keys, lifetimes, bodies and cursors."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.live import serving


def _url(workspace: uuid.UUID, key: str | None = None) -> str:
    base = f"/v1/workspaces/{workspace}/ui-state"
    return base if key is None else f"{base}/{key}"


async def _pair(people: People) -> tuple[Person, Person, uuid.UUID]:
    alice = await people.new()
    workspace = await people.workspace(alice)
    bob = await people.join(workspace, alice, "owner")
    return alice, bob, workspace


@pytest.mark.parametrize("key", [".", "..", "...", ":", "-", "_", "a..b", "::"])
async def test_dot_and_punctuation_keys_stay_the_callers_own(
    client: httpx.AsyncClient, people: People, redis: Redis, key: str
) -> None:
    alice, bob, workspace = await _pair(people)
    # Percent-encoded so that no client or router resolves "." or ".." as a path segment.
    raw = "".join(f"%{ord(c):02X}" for c in key)
    put = await client.put(_url(workspace, raw), json={"k": key}, headers=alice.headers)
    assert put.status_code in {200, 400, 404}, (key, put.status_code, put.text)
    if put.status_code != 200:
        return
    assert put.json()["key"] == key
    assert (await client.get(_url(workspace, raw), headers=bob.headers)).status_code == 404
    mine = await client.get(_url(workspace, raw), headers=alice.headers)
    assert (mine.status_code, mine.json()["value"]) == (200, {"k": key})
    stored = f"keel:{{u:{alice.id}}}:ui:{workspace}:{key}"
    assert await redis.exists(stored) == 1


async def test_keys_are_case_sensitive_and_never_shared(
    client: httpx.AsyncClient, people: People
) -> None:
    alice, bob, workspace = await _pair(people)
    assert (await client.put(_url(workspace, "Panel"), json=1, headers=alice.headers)).is_success
    assert (await client.put(_url(workspace, "panel"), json=2, headers=alice.headers)).is_success
    assert (await client.get(_url(workspace, "PANEL"), headers=alice.headers)).status_code == 404
    for key, value in (("Panel", 1), ("panel", 2)):
        read = await client.get(_url(workspace, key), headers=alice.headers)
        assert read.json()["value"] == value
        assert (await client.get(_url(workspace, key), headers=bob.headers)).status_code == 404


@pytest.mark.parametrize(
    "ttl", ["0", "-1", "2592001", "1.5", "2592000.5", "", "abc", "9" * 40, "0x10", "NaN", "1 "]
)
async def test_odd_lifetimes_are_400_never_500(
    client: httpx.AsyncClient, people: People, ttl: str
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    put = await client.put(
        _url(workspace, "k"), params={"ttl": ttl}, json=True, headers=alice.headers
    )
    assert put.status_code == 400, (ttl, put.status_code, put.text)
    assert (await client.get(_url(workspace, "k"), headers=alice.headers)).status_code == 404


async def test_a_chunked_body_over_the_limit_is_413_and_stores_nothing(
    settings: Settings, people: People
) -> None:
    """Through a real server: no Content-Length, so the limit must stop the stream itself."""
    alice = await people.new()
    workspace = await people.workspace(alice)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'"'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"'

    async with serving(settings) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        put = await http.put(
            _url(workspace, "big"),
            content=chunks(),
            headers={**alice.headers, "Content-Type": "application/json"},
        )
        assert put.status_code == 413, put.status_code
        assert put.headers["content-type"] == "application/problem+json"
        assert (await http.get(_url(workspace, "big"), headers=alice.headers)).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf{}",  # a BOM
        b"{}\x00",
        b"[1,]",
        b"{'a': 1}",
        b"Infinity",
        b"-NaN",
        b"\xff",
        b"[" * 5000 + b"]" * 5000,
        b'{"a": 1}{"b": 2}',
        b"",
        b"1e999",  # JSON, but outside Keel's JSON (domain/json_values.py)
        b'"\\ud800"',
    ],
)
async def test_bodies_that_are_not_one_json_document_are_400(
    client: httpx.AsyncClient, people: People, body: bytes
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    put = await client.put(
        _url(workspace, "v"),
        content=body,
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert put.status_code == 400, (body[:20], put.status_code, put.text)


@pytest.mark.parametrize(
    "value", [b'"</script><script>alert(1)</script>"', b"  [ 1 ,2 ]  ", b'"\\u2028"']
)
async def test_a_stored_value_never_breaks_the_response_document(
    client: httpx.AsyncClient, people: People, value: bytes
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    put = await client.put(
        _url(workspace, "v"),
        content=value,
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert put.status_code == 200, put.text
    read = await client.get(_url(workspace, "v"), headers=alice.headers)
    assert read.status_code == 200
    assert read.headers["content-type"].startswith("application/json")
    document = json.loads(read.content)  # one well-formed JSON document
    assert set(document) == {"key", "value", "expires_at"}
    assert document["key"] == "v"


async def test_a_cursor_names_a_position_only_in_the_callers_own_keys(
    client: httpx.AsyncClient, people: People
) -> None:
    alice, bob, workspace = await _pair(people)
    for key in ("a", "b", "c"):
        assert (await client.put(_url(workspace, key), json=key, headers=alice.headers)).is_success
    page = await client.get(_url(workspace), params={"limit": 1}, headers=alice.headers)
    cursor = page.json()["next_cursor"]
    assert cursor
    # Bob replaying Alice's cursor sees his own (empty) list, nothing of hers.
    theirs = await client.get(_url(workspace), params={"cursor": cursor}, headers=bob.headers)
    assert (theirs.status_code, theirs.json()["items"]) == (200, [])
    for forged in ("Kg", "e30", "!!!", "a" * 400, "%00", "IA", "Lw"):
        response = await client.get(
            _url(workspace), params={"cursor": forged}, headers=alice.headers
        )
        assert response.status_code == 400, (forged, response.status_code)


async def test_a_removed_and_re_added_member_cannot_reach_state_through_another_workspace(
    client: httpx.AsyncClient, people: People
) -> None:
    alice, bob, workspace = await _pair(people)
    other = await people.workspace(bob, "Bob's")
    put = await client.put(_url(workspace, "draft"), json="secret", headers=alice.headers)
    assert put.is_success
    # Same key, same user, another workspace: nothing.
    assert (await client.get(_url(other, "draft"), headers=alice.headers)).status_code == 404
    assert (await client.get(_url(other, "draft"), headers=bob.headers)).status_code == 404
