"""Per-user UI state over HTTP: round trips, lifetimes, limits, roles, Redis down."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from adapters.redis.ui_state import RedisUIStateStore
from domain.ui_state import (
    DEFAULT_TTL_S,
    MAX_KEYS,
    MAX_TTL_S,
    MAX_VALUE_BYTES,
    UIState,
    UIStateQuota,
)
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.conftest import People, Person


async def _setup(people: People, role: str = "owner") -> tuple[Person, uuid.UUID, str]:
    owner = await people.new()
    workspace = await people.workspace(owner)
    person = owner if role == "owner" else await people.join(workspace, owner, role)
    return person, workspace, f"/v1/workspaces/{workspace}/ui-state"


def _entry(workspace: uuid.UUID, user: uuid.UUID, key: str) -> str:
    return f"keel:{{u:{user}}}:ui:{workspace}:{key}"


def _index(workspace: uuid.UUID, user: uuid.UUID) -> str:
    return f"keel:{{u:{user}}}:ui-index:{workspace}"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"open": ["left", "right"], "width": 320}',
        b'[1, 2.5, "three", null]',
        b'"a draft \\u00e9 with \\"quotes\\""',
        b"42",
        b"-0.5e3",
        b"true",
        b"false",
        b"null",
        b'  {"spaced" :  {"out": [ ]} }  ',
    ],
)
async def test_any_json_value_round_trips_exactly(
    client: httpx.AsyncClient, people: People, raw: bytes
) -> None:
    member, _, url = await _setup(people, "member")
    put = await client.put(f"{url}/panel.left", content=raw, headers=member.headers)
    assert put.status_code == 200, put.text
    assert set(put.json()) == {"key", "expires_at"}
    assert put.json()["key"] == "panel.left"

    read = await client.get(f"{url}/panel.left", headers=member.headers)
    assert read.status_code == 200
    body = read.json()
    assert body == {
        "key": "panel.left",
        "value": msgspec.json.decode(raw),
        "expires_at": put.json()["expires_at"],
    }
    assert raw.strip() in read.content  # kept as sent, not re-encoded


async def test_put_replaces_and_delete_removes(client: httpx.AsyncClient, people: People) -> None:
    owner, _, url = await _setup(people)
    for value in ({"v": 1}, {"v": 2}):
        assert (await client.put(f"{url}/k", json=value, headers=owner.headers)).status_code == 200
    assert (await client.get(f"{url}/k", headers=owner.headers)).json()["value"] == {"v": 2}
    assert (await client.delete(f"{url}/k", headers=owner.headers)).status_code == 204
    for method in ("GET", "DELETE"):
        gone = await client.request(method, f"{url}/k", headers=owner.headers)
        assert gone.status_code == 404
        assert gone.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(url, headers=owner.headers)).json()["items"] == []


async def test_default_lifetime_is_seven_days_in_redis(
    client: httpx.AsyncClient, people: People, redis: Redis
) -> None:
    owner, workspace, url = await _setup(people)
    before = datetime.now(UTC)
    put = await client.put(f"{url}/filters", json={"q": "x"}, headers=owner.headers)
    expires_at = _at(put.json()["expires_at"])
    week = timedelta(seconds=DEFAULT_TTL_S)
    assert before + week - timedelta(seconds=1) <= expires_at <= datetime.now(UTC) + week
    pttl = await redis.pttl(_entry(workspace, owner.id, "filters"))
    assert DEFAULT_TTL_S * 1000 - 5000 < pttl <= DEFAULT_TTL_S * 1000
    # Read a moment later than the entry's: the index lives at least as long.
    assert await redis.pttl(_index(workspace, owner.id)) >= pttl - 100


async def test_an_explicit_ttl_is_the_real_ttl_and_the_index_outlives_every_entry(
    client: httpx.AsyncClient, people: People, redis: Redis
) -> None:
    owner, workspace, url = await _setup(people)
    await client.put(f"{url}/long?ttl=3600", json=1, headers=owner.headers)
    put = await client.put(f"{url}/short?ttl=60", json=2, headers=owner.headers)
    assert put.status_code == 200
    assert 55_000 < await redis.pttl(_entry(workspace, owner.id, "short")) <= 60_000
    assert 3_595_000 < await redis.pttl(_index(workspace, owner.id)) <= 3_600_000
    read = await client.get(f"{url}/short", headers=owner.headers)
    assert read.json()["expires_at"] == put.json()["expires_at"]
    # Shortening the longest entry shortens the index, never below an entry.
    await client.put(f"{url}/long?ttl=120", json=1, headers=owner.headers)
    assert 115_000 < await redis.pttl(_index(workspace, owner.id)) <= 120_000


@pytest.mark.parametrize("ttl", ["0", "-1", str(MAX_TTL_S + 1), "abc", "1.5"])
async def test_a_ttl_out_of_range_is_400(
    client: httpx.AsyncClient, people: People, redis: Redis, ttl: str
) -> None:
    owner, workspace, url = await _setup(people)
    response = await client.put(f"{url}/k?ttl={ttl}", json=1, headers=owner.headers)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == 400
    assert await redis.exists(_entry(workspace, owner.id, "k")) == 0


async def test_the_ttl_bounds_themselves_are_accepted_and_an_entry_expires(
    client: httpx.AsyncClient, people: People
) -> None:
    owner, _, url = await _setup(people)
    longest = await client.put(f"{url}/month?ttl={MAX_TTL_S}", json=1, headers=owner.headers)
    assert longest.status_code == 200
    assert (await client.put(f"{url}/blink?ttl=1", json=1, headers=owner.headers)).is_success
    await asyncio.sleep(1.2)
    assert (await client.get(f"{url}/blink", headers=owner.headers)).status_code == 404
    assert (await client.delete(f"{url}/blink", headers=owner.headers)).status_code == 404
    listed = (await client.get(url, headers=owner.headers)).json()["items"]
    assert listed == [{"key": "month", "expires_at": longest.json()["expires_at"]}]


async def test_list_is_ordered_by_key_and_paginates(
    client: httpx.AsyncClient, people: People
) -> None:
    owner, _, url = await _setup(people)
    keys = ["b", "a:2", "a.1", "Z", "c-3", "a_0", "0"]
    for key in keys:
        assert (await client.put(f"{url}/{key}", json=key, headers=owner.headers)).is_success
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(url, params=params, headers=owner.headers)).json()
        assert all(set(item) == {"key", "expires_at"} for item in page["items"])
        seen += [item["key"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(keys)
    assert pages == 3
    everything = (await client.get(url, headers=owner.headers)).json()
    assert [item["key"] for item in everything["items"]] == sorted(keys)
    assert everything["next_cursor"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "cursor=not-ours!", "cursor=Kg"])
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, people: People, query: str
) -> None:
    owner, _, url = await _setup(people)
    assert (await client.get(f"{url}?{query}", headers=owner.headers)).status_code == 400


async def test_the_key_cap_is_409_but_replacing_a_key_still_works(
    client: httpx.AsyncClient, people: People, redis: Redis
) -> None:
    owner, workspace, url = await _setup(people)
    store = RedisUIStateStore(redis)
    expires_at = datetime.now(UTC) + timedelta(hours=1)
    for i in range(MAX_KEYS - 1):
        state = UIState(workspace, owner.id, f"seed.{i:04}", b"1", expires_at)
        assert await store.put(state, UIStateQuota()) is None
    assert (await client.put(f"{url}/last", json=1, headers=owner.headers)).status_code == 200
    over = await client.put(f"{url}/one-too-many", json=1, headers=owner.headers)
    assert over.status_code == 409
    assert str(MAX_KEYS) in over.json()["detail"]
    assert await redis.exists(_entry(workspace, owner.id, "one-too-many")) == 0
    assert (await client.put(f"{url}/last", json=2, headers=owner.headers)).status_code == 200
    assert (await client.delete(f"{url}/seed.0000", headers=owner.headers)).status_code == 204
    assert (await client.put(f"{url}/one-too-many", json=1, headers=owner.headers)).is_success
    # The cap is per user: another member of the workspace is not affected.
    other = await people.join(workspace, owner, "member")
    assert (await client.put(f"{url}/mine", json=1, headers=other.headers)).status_code == 200


async def test_a_value_of_64_kib_fits_and_one_byte_more_is_413(
    client: httpx.AsyncClient, people: People, redis: Redis
) -> None:
    owner, workspace, url = await _setup(people)
    fits = b'"' + b"x" * (MAX_VALUE_BYTES - 2) + b'"'
    assert len(fits) == MAX_VALUE_BYTES
    assert (await client.put(f"{url}/big", content=fits, headers=owner.headers)).is_success
    assert (await client.get(f"{url}/big", headers=owner.headers)).json()["value"] == fits[
        1:-1
    ].decode()

    too_big = b'"' + b"x" * (MAX_VALUE_BYTES - 1) + b'"'
    refused = await client.put(f"{url}/bigger", content=too_big, headers=owner.headers)
    assert refused.status_code == 413
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["status"] == 413
    assert await redis.exists(_entry(workspace, owner.id, "bigger")) == 0


@pytest.mark.parametrize(
    "body", [b"", b"{", b"{'single': 1}", b"NaN", b"[1,]", b"1 2", b"\xff\xfe1\x00", b"[" * 5000]
)
async def test_a_body_that_is_not_one_json_value_is_400(
    client: httpx.AsyncClient, people: People, redis: Redis, body: bytes
) -> None:
    owner, workspace, url = await _setup(people)
    response = await client.put(f"{url}/draft", content=body, headers=owner.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await redis.exists(_entry(workspace, owner.id, "draft")) == 0


async def test_a_viewer_reads_its_own_state_but_cannot_write(
    client: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    url = f"/v1/workspaces/{workspace}/ui-state"
    person = await people.join(workspace, owner, "member")
    assert (await client.put(f"{url}/tab", json="notes", headers=person.headers)).is_success
    demoted = await client.patch(
        f"/v1/workspaces/{workspace}/members/{person.id}",
        json={"role": "viewer"},
        headers=owner.headers,
    )
    assert demoted.status_code == 200
    assert (await client.get(f"{url}/tab", headers=person.headers)).json()["value"] == "notes"
    assert [i["key"] for i in (await client.get(url, headers=person.headers)).json()["items"]] == [
        "tab"
    ]
    for method in ("PUT", "DELETE"):
        denied = await client.request(method, f"{url}/tab", json=1, headers=person.headers)
        assert denied.status_code == 403, denied.text
    assert (await client.get(f"{url}/tab", headers=person.headers)).json()["value"] == "notes"


async def test_a_removed_member_is_refused_on_the_very_next_request(
    client: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    url = f"/v1/workspaces/{workspace}/ui-state"
    member = await people.join(workspace, owner, "member")
    assert (await client.put(f"{url}/tab", json=1, headers=member.headers)).is_success
    for _ in range(2):  # the second read is served from the cached membership
        assert (await client.get(f"{url}/tab", headers=member.headers)).status_code == 200
    removed = await client.delete(
        f"/v1/workspaces/{workspace}/members/{member.id}", headers=owner.headers
    )
    assert removed.status_code == 204
    for method, path in (("GET", "/tab"), ("GET", ""), ("PUT", "/tab"), ("DELETE", "/tab")):
        refused = await client.request(method, url + path, json=2, headers=member.headers)
        assert refused.status_code == 404, (method, path, refused.text)


async def test_redis_down_is_503_with_problem_details(settings: Settings, tmp_path: Path) -> None:
    dead = msgspec.structs.replace(
        settings, redis_url=f"unix://{tmp_path}/no-redis.sock", redis_cluster=False
    )
    async with AsyncTestClient(create_app(dead)) as client:
        people = People(client)
        owner = await people.new()
        workspace = await people.workspace(owner)
        url = f"/v1/workspaces/{workspace}/ui-state"
        for method, path in (("PUT", "/k"), ("GET", "/k"), ("DELETE", "/k"), ("GET", "")):
            response = await client.request(method, url + path, json=1, headers=owner.headers)
            assert response.status_code == 503, (method, path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "Traceback" not in response.text
