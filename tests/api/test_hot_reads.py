"""The cached-read fast path (entrypoints/http/hot_reads.py) answers exactly
as the full path would, and only when the cache alone can: each request is
sent to the app with the fast path and to one without it, and the answers
compared; the attacks (forged, expired or foreign tokens, other tenants,
removed members) must reach the full path and be refused there."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import msgspec
import pytest
import structlog
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from entrypoints.http.app import create_app
from entrypoints.http.hot_reads import ROUTE, HotDocumentReads
from entrypoints.settings import Settings
from tests.conftest import AUDIENCE, JWT_SECRET, People, Person, bearer

BRAND: dict[str, object] = {
    "kind": "brand",
    "title": "Voice",
    "content": {"tone": "warm"},
    "tags": ["a"],
}
COMPARED = ("content-type", "content-length", "etag")


@pytest.fixture
async def full(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The same app without the fast path."""
    app = create_app(settings)
    assert isinstance(app.asgi_handler, HotDocumentReads)
    app.asgi_handler = app.asgi_handler.full_path
    async with AsyncTestClient(app) as client:
        yield client


async def _document(people: People) -> tuple[Person, uuid.UUID, str]:
    """A workspace's owner, the workspace, and the URL of one of its documents."""
    owner = await people.new()
    workspace = await people.workspace(owner)
    document = await people.document(workspace, owner, BRAND)
    return owner, workspace, f"/v1/workspaces/{workspace}/foundation/{document}"


def _answered() -> float:
    return REGISTRY.get_sample_value("keel_hot_reads_total") or 0.0


def _token(**changes: object) -> dict[str, str]:
    now = datetime.now(UTC)
    claims = {"sub": str(uuid.uuid4()), "aud": AUDIENCE, "exp": now + timedelta(hours=1)}
    secret, algorithm = str(changes.pop("secret", JWT_SECRET)), str(changes.pop("alg", "HS256"))
    claims.update(changes)
    token = jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, algorithm)
    return {"Authorization": f"Bearer {token}"}


async def _both(
    client: httpx.AsyncClient,
    full: httpx.AsyncClient,
    method: str,
    url: str,
    headers: Mapping[str, str] | httpx.Headers,
) -> tuple[httpx.Response, bool]:
    """The full path's answer, then the fast one's (the cache warm by then):
    they must agree; returns the answer and whether the fast path gave it."""
    expected = await full.request(method, url, headers=headers)
    before = _answered()
    got = await client.request(method, url, headers=headers)
    assert (got.status_code, got.content) == (expected.status_code, expected.content), url
    for name in COMPARED:
        assert got.headers.get(name) == expected.headers.get(name), name
    assert got.headers["x-request-id"]
    return got, _answered() > before


async def test_a_warm_read_is_answered_by_the_fast_path_exactly_as_by_the_full_one(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    owner, workspace, url = await _document(people)
    traced = {**owner.headers, "X-Request-ID": "trace-42"}
    with capture_logs([structlog.contextvars.merge_contextvars]) as logs:
        response, fast = await _both(client, full, "GET", url, traced)
    assert fast
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-42"
    lines = [entry for entry in logs if entry["event"] == "request"]
    assert len(lines) == 2, "one line each, full path then fast path"
    for line in lines:
        del line["duration_ms"]
    assert lines[0] == lines[1]
    assert lines[1]["request_id"] == "trace-42"
    assert (lines[1]["route"], lines[1]["status"]) == (ROUTE, 200)
    assert (lines[1]["user_id"], lines[1]["workspace_id"]) == (str(owner.id), str(workspace))
    metrics = (await client.get("/metrics")).text
    assert (
        f'keel_requests_total{{app_name="keel",method="GET",path="{ROUTE}",status_code="200"}}'
        in metrics
    )


async def test_switched_off_a_warm_read_gets_the_same_answer_without_the_fast_path(
    settings: Settings, client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    """KEEL_HOT_READS=false: the layer is left out, the full path answers."""
    app = create_app(msgspec.structs.replace(settings, hot_reads=False))
    assert not isinstance(app.asgi_handler, HotDocumentReads)
    owner, _, url = await _document(people)
    async with AsyncTestClient(app) as switched_off:
        response, fast = await _both(switched_off, full, "GET", url, owner.headers)
    assert response.status_code == 200
    assert not fast, "the fast path answered although switched off"
    _, fast = await _both(client, full, "GET", url, owner.headers)
    assert fast, "the cache was warm: switched on, the fast path answers"


@pytest.mark.parametrize(
    ("suffix", "extra"),
    [
        ("?fields=all", {}),
        ("/", {}),
        ("", {"If-None-Match": "*"}),
        ("", {"If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"}),
    ],
)
async def test_requests_it_does_not_serve_reach_the_full_path(
    client: httpx.AsyncClient,
    full: httpx.AsyncClient,
    people: People,
    suffix: str,
    extra: dict[str, str],
) -> None:
    owner, _workspace, url = await _document(people)
    await client.get(url, headers=owner.headers)
    _, fast = await _both(client, full, "GET", url + suffix, {**owner.headers, **extra})
    assert not fast
    _, fast = await _both(
        client,
        full,
        "GET",
        url.upper()
        .replace("/V1/WORKSPACES/", "/v1/workspaces/")
        .replace("/FOUNDATION/", "/foundation/"),
        owner.headers,
    )
    assert not fast
    _, fast = await _both(client, full, "HEAD", url, owner.headers)
    assert not fast


async def test_an_etag_match_is_a_304_from_the_full_path(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    owner, _workspace, url = await _document(people)
    etag = (await client.get(url, headers=owner.headers)).headers["etag"]
    response, fast = await _both(client, full, "GET", url, {**owner.headers, "If-None-Match": etag})
    assert (response.status_code, fast) == (304, False)


@pytest.mark.parametrize(
    "forged",
    [
        {"exp": datetime.now(UTC) - timedelta(seconds=60)},
        {"aud": "someone-else"},
        {"aud": None},
        {"secret": "not-the-secret-" + "y" * 60},
        {"alg": "HS512"},
        {"sub": "not-a-uuid"},
    ],
    ids=["expired", "audience", "no-audience", "secret", "algorithm", "subject"],
)
async def test_forged_tokens_are_refused_by_the_full_path(
    client: httpx.AsyncClient,
    full: httpx.AsyncClient,
    people: People,
    forged: dict[str, object],
) -> None:
    owner, _workspace, url = await _document(people)
    await client.get(url, headers=owner.headers)
    headers = _token(**{"sub": str(owner.id), **forged})
    response, fast = await _both(client, full, "GET", url, headers)
    assert (response.status_code, fast) == (401, False)


async def test_unsigned_and_oddly_sent_tokens_never_take_the_fast_path(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    owner, _workspace, url = await _document(people)
    await client.get(url, headers=owner.headers)
    claims = {"sub": str(owner.id), "aud": AUDIENCE, "exp": datetime.now(UTC) + timedelta(hours=1)}
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    token = owner.headers["Authorization"].removeprefix("Bearer ")
    for headers in (
        {"Authorization": f"Bearer {unsigned}"},
        {"Authorization": f"Token {token}"},
        {"Authorization": token},
        {},
    ):
        _, fast = await _both(client, full, "GET", url, headers)
        assert not fast, headers
    twice = [("Authorization", f"Bearer {unsigned}"), ("Authorization", f"Bearer {token}")]
    expected = await full.get(url, headers=httpx.Headers(twice))
    before = _answered()
    got = await client.get(url, headers=httpx.Headers(twice))
    assert (got.status_code, _answered()) == (expected.status_code, before)


async def test_other_tenants_and_removed_members_are_refused_by_the_full_path(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    document = await people.document(workspace, alice, BRAND)
    url = f"/v1/workspaces/{workspace}/foundation/{document}"
    bob = await people.join(workspace, alice, "viewer")
    _, fast = await _both(client, full, "GET", url, bob.headers)
    assert fast, "a viewer's warm read"

    mallory = await people.new()
    elsewhere = await people.workspace(mallory)
    for target in (url, f"/v1/workspaces/{elsewhere}/foundation/{document}"):
        for _ in range(2):  # the second time with the refusal cached
            response, fast = await _both(client, full, "GET", target, mallory.headers)
            assert (response.status_code, fast) == (404, False), target

    removed = await client.delete(
        f"/v1/workspaces/{workspace}/members/{bob.id}", headers=alice.headers
    )
    assert removed.status_code == 204
    response, fast = await _both(client, full, "GET", url, bob.headers)
    assert (response.status_code, fast) == (404, False)


async def test_writes_are_seen_at_once_and_deleted_documents_are_gone(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    owner, _workspace, url = await _document(people)
    await client.get(url, headers=owner.headers)
    changed = await client.patch(url, json={"title": "New voice"}, headers=owner.headers)
    assert changed.status_code == 200
    response, _ = await _both(client, full, "GET", url, owner.headers)
    assert response.json()["title"] == "New voice"
    response, fast = await _both(client, full, "GET", url, owner.headers)
    assert (response.json()["version"], fast) == (2, True)
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    for _ in range(2):
        response, fast = await _both(client, full, "GET", url, owner.headers)
        assert (response.status_code, fast) == (404, False)


async def test_a_first_request_registers_its_user_through_the_full_path(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    owner, _workspace, url = await _document(people)
    await client.get(url, headers=owner.headers)
    renamed = bearer(owner.id, "renamed@example.test")
    _, fast = await _both(client, full, "GET", url, renamed)
    assert not fast, "a changed email is registered by the full path"
    me = await client.get("/v1/me", headers=renamed)
    assert me.json()["email"] == "renamed@example.test"
    _, fast = await _both(client, full, "GET", url, renamed)
    assert fast
