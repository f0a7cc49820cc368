"""Attacks on the cached-read fast path (entrypoints/http/hot_reads.py)
and on the request-context layer it shares with the full path.

Each request is answered by the app with the fast path and by one without it
(tests/api/test_hot_reads.py's `_both`); they must agree. Findings when this
was written: a root path made the two disagree (the full path strips it
before routing, the fast path did not), and a failure after the cache lookup
escaped as a bare server error; and plain `uvicorn entrypoints.http.asgi:app`
wrote uvicorn's plain-text access lines (query strings, stream tickets
included) on stdout. All three are fixed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import structlog
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

import entrypoints.http.hot_reads as hot_reads_module
from application.profiles import GetMe
from entrypoints.http.app import create_app
from entrypoints.http.auth import issue_token
from entrypoints.http.hot_reads import ROUTE, HotDocumentReads
from entrypoints.settings import Settings
from tests.api.test_hot_reads import _answered, _both, _document, _token
from tests.conftest import AUDIENCE, JWT_SECRET, People, Person
from tests.live import serving

ROOT = Path(__file__).resolve().parents[2]


def _without_fast_path(app: Litestar) -> Litestar:
    assert isinstance(app.asgi_handler, HotDocumentReads)
    app.asgi_handler = app.asgi_handler.full_path
    return app


@pytest.fixture
async def full(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The same app without the fast path (another API process, as far as
    process-local state goes: its own token memory, registrations, cache client)."""
    async with AsyncTestClient(_without_fast_path(create_app(settings))) as client:
        yield client


async def _warm(client: httpx.AsyncClient, url: str, person: Person) -> None:
    assert (await client.get(url, headers=person.headers)).status_code == 200


async def _warmed(client: httpx.AsyncClient, people: People) -> tuple[Person, uuid.UUID, str]:
    """A document (see _document), read once by its owner: the cache holds it."""
    owner, workspace, url = await _document(people)
    await _warm(client, url, owner)
    return owner, workspace, url


def _email(person: Person) -> str:
    return f"{person.id.hex[:8]}@example.test"


# --- tokens -------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"nbf": datetime.now(UTC) + timedelta(minutes=5)},
        {"nbf": datetime.now(UTC) - timedelta(minutes=5)},
        {"iat": datetime.now(UTC) + timedelta(minutes=5)},
        {"iat": "yesterday"},
        {"iat": None},
        {"iat": 10**20},
        {"exp": 10**20},
        {"exp": "tomorrow"},
        {"aud": [AUDIENCE, "another"]},
        {"iss": "https://elsewhere.example"},
        {"email": 42},
    ],
    ids=[
        "nbf-future",
        "nbf-past",
        "iat-future",
        "iat-text",
        "iat-missing",
        "iat-huge",
        "exp-huge",
        "exp-text",
        "aud-list",
        "issuer",
        "email-number",
    ],
)
async def test_odd_claims_get_the_full_paths_answer(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People, claims: dict[str, Any]
) -> None:
    owner, _workspace, url = await _warmed(client, people)
    base: dict[str, Any] = {
        "sub": str(owner.id),
        "email": _email(owner),
        "iat": datetime.now(UTC),
    }
    headers = _token(**{**base, **claims})
    await _both(client, full, "GET", url, headers)


@pytest.mark.parametrize(
    "spelling",
    [str.upper, lambda s: "{" + s + "}", lambda s: s.replace("-", ""), lambda s: f"urn:uuid:{s}"],
    ids=["upper", "braces", "hex", "urn"],
)
async def test_a_subject_in_another_uuid_spelling_is_refused_on_both_paths(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People, spelling: Any
) -> None:
    owner, _workspace, url = await _warmed(client, people)
    headers = _token(sub=spelling(str(owner.id)), email=_email(owner), iat=datetime.now(UTC))
    response, fast = await _both(client, full, "GET", url, headers)
    assert (response.status_code, fast) == (401, False)


async def test_header_spellings_of_the_token(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    owner, _workspace, url = await _warmed(client, people)
    token = owner.headers["Authorization"].removeprefix("Bearer ")
    for value in (
        f"bearer {token}",
        f"BEARER {token}",
        f"Bearer\t{token}",
        f"Bearer {token} ",
        f"Bearer {token}x",
        f"Bearer {token[:-1]}",
        f"Basic {token}",
        f"Bearer {token}, Bearer {token}",
    ):
        await _both(client, full, "GET", url, {"Authorization": value})
    for extra in ({"Cookie": f"token={token}"}, {"X-Api-Key": token}):
        response, fast = await _both(client, full, "GET", url, extra)
        assert (response.status_code, fast) == (401, False)


async def test_a_remembered_token_stops_working_when_it_expires(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    owner, _workspace, url = await _warmed(client, people)
    # Expired already, but 2 s short of the leeway: accepted for 2 s more.
    ttl = 2 - int(Settings().jwt_leeway_s)
    brief = {
        "Authorization": "Bearer "
        + issue_token(JWT_SECRET, AUDIENCE, owner.id, _email(owner), ttl_seconds=ttl)
    }
    response, fast = await _both(client, full, "GET", url, brief)
    assert (response.status_code, fast) == (200, True)
    await asyncio.sleep(2.2)
    response, fast = await _both(client, full, "GET", url, brief)
    assert (response.status_code, fast) == (401, False)


# --- requests -------------------------------------------------------------------


async def test_odd_spellings_of_the_request_get_the_full_paths_answer(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    owner, workspace, url = await _warmed(client, people)
    document = url.rsplit("/", 1)[1]
    for variant in (
        f"/v1/workspaces/{workspace}%2Ffoundation%2F{document}",
        f"/v1/workspaces/{workspace}/%66oundation/{document}",
        f"/v1/workspaces/{workspace}/foundation/{document.upper()}",
        f"/v1/workspaces/{str(workspace).upper()}/foundation/{document}",
        f"/v1/workspaces/{workspace}/foundation/{document.replace('-', '')}",
        f"/v1/workspaces/{workspace}//foundation/{document}",
        f"//v1/workspaces/{workspace}/foundation/{document}",
        f"/v1/workspaces/{workspace}/foundation/{document}/.",
        f"/v1/workspaces/{workspace}/foundation/./{document}",
        url + "?",
        url + "?ticket=abc",
        url + "#fragment",
    ):
        await _both(client, full, "GET", variant, owner.headers)
    for method in ("HEAD", "OPTIONS", "PUT"):
        _, fast = await _both(client, full, method, url, owner.headers)
        assert not fast, method
    for extra in (
        {"Accept": "application/xml"},
        {"Accept-Encoding": "gzip"},
        {"Cache-Control": "no-cache"},
        {"Origin": "https://evil.example"},
        {"Range": "bytes=0-3"},
        {"If-Match": '"1"'},
        {"If-Unmodified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"},
        {"Content-Type": "application/json"},
    ):
        await _both(client, full, "GET", url, {**extra, **owner.headers})


async def test_a_get_with_a_body_gets_the_full_paths_answer(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People, settings: Settings
) -> None:
    owner, _workspace, url = await _warmed(client, people)
    for body in (b"{}", b"x" * (settings.max_body_bytes + 1)):
        expected = await full.request("GET", url, headers=owner.headers, content=body)
        got = await client.request("GET", url, headers=owner.headers, content=body)
        assert (got.status_code, got.content) == (expected.status_code, expected.content)


@pytest.mark.parametrize("root_path", ["/v1", "/f", "/api"])
async def test_a_root_path_is_routed_as_the_full_path_routes_it(
    settings: Settings, people: People, root_path: str
) -> None:
    """Litestar strips the scope's root_path from the path before routing."""
    owner, _workspace, url = await _document(people)
    await _warm(people.client, url, owner)
    with_fast, without = create_app(settings), _without_fast_path(create_app(settings))
    async with (
        AsyncTestClient(with_fast, root_path=root_path) as client,
        AsyncTestClient(without, root_path=root_path) as full,
    ):
        for each in (client, full):
            assert (await each.get(root_path + "/v1/me", headers=owner.headers)).status_code == 200
        for target in (url, root_path + url):
            expected = await full.get(target, headers=owner.headers)
            got = await client.get(target, headers=owner.headers)
            assert (got.status_code, got.content) == (expected.status_code, expected.content)


async def test_every_response_header_is_the_full_paths(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    owner, _workspace, url = await _warmed(client, people)
    headers = {**owner.headers, "X-Request-ID": "same-id"}
    expected = await full.get(url, headers=headers)
    before = _answered()
    got = await client.get(url, headers=headers)
    assert _answered() == before + 1
    assert got.content == expected.content
    assert sorted(got.headers.multi_items()) == sorted(expected.headers.multi_items())


# --- tenants, membership, cache ---------------------------------------------------


async def test_a_member_removed_by_another_process_is_refused_at_once(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    alice, workspace, url = await _document(people)
    bob = await people.join(workspace, alice, "member")
    carol = await people.join(workspace, alice, "viewer")
    for person in (alice, bob, carol):
        _, fast = await _both(client, full, "GET", url, person.headers)
        assert fast
    removed = await full.delete(
        f"/v1/workspaces/{workspace}/members/{bob.id}", headers=alice.headers
    )
    assert removed.status_code == 204
    before = _answered()
    assert (await client.get(url, headers=bob.headers)).status_code == 404
    assert _answered() == before
    gone = await full.delete(f"/v1/workspaces/{workspace}", headers=alice.headers)
    assert gone.status_code == 204, gone.text
    for person in (alice, carol):
        response = await client.get(url, headers=person.headers)
        assert response.status_code == 404
    assert _answered() == before


async def test_a_document_changed_by_another_process_is_read_fresh(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People
) -> None:
    owner, _workspace, url = await _warmed(client, people)
    changed = await full.patch(url, json={"content": {"tone": "cold"}}, headers=owner.headers)
    assert changed.status_code == 200
    response = await client.get(url, headers=owner.headers)
    assert (response.json()["content"], response.headers["etag"]) == ({"tone": "cold"}, '"2"')


async def test_the_same_document_id_in_another_tenant_is_never_served(
    client: httpx.AsyncClient, full: httpx.AsyncClient, people: People, redis: Any
) -> None:
    """Mallory asks for the owner's (cached) document under her own workspace:
    the cache key holds the workspace, so the answer is the full path's 404."""
    _owner, workspace, url = await _warmed(client, people)
    mallory = await people.new()
    elsewhere = await people.workspace(mallory)
    document = url.rsplit("/", 1)[1]
    target = f"/v1/workspaces/{elsewhere}/foundation/{document}"
    await client.get(f"/v1/workspaces/{elsewhere}/foundation", headers=mallory.headers)
    for _ in range(2):
        response, fast = await _both(client, full, "GET", target, mallory.headers)
        assert (response.status_code, fast) == (404, False)
    # mallory, not a member of the owner's workspace, is never cached as one
    keys = await redis.keys(f"keel:{{ws:{workspace}}}:v:members:{mallory.id}")
    assert keys == []


async def test_with_the_cache_off_nothing_takes_the_fast_path(
    settings: Settings, people: People
) -> None:
    owner, _workspace, url = await _document(people)
    app = create_app(msgspec.structs.replace(settings, cache=False))
    async with AsyncTestClient(app) as off:
        await off.get("/v1/me", headers=owner.headers)
        before = _answered()
        for _ in range(2):
            response = await off.get(url, headers=owner.headers)
            assert response.status_code == 200
        assert _answered() == before


async def test_with_redis_down_the_full_path_answers(settings: Settings, people: People) -> None:
    owner, _workspace, url = await _document(people)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    down = msgspec.structs.replace(
        settings, redis_url=f"redis://127.0.0.1:{port}/15", redis_cluster=False
    )
    async with AsyncTestClient(create_app(down)) as client:
        await client.get("/v1/me", headers=owner.headers)
        before = _answered()
        for _ in range(2):
            response = await client.get(url, headers=owner.headers)
            assert response.status_code == 200, response.text
            assert response.headers["x-request-id"]
        assert _answered() == before


# --- failures inside the fast path ----------------------------------------------------


async def test_a_failure_after_the_cache_lookup_is_answered_by_the_full_path(
    client: httpx.AsyncClient, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, _workspace, url = await _warmed(client, people)

    def broken(_value: object) -> bytes:
        raise RuntimeError("encoder broken on purpose")

    monkeypatch.setattr(hot_reads_module, "_encode", broken)
    with capture_logs([structlog.contextvars.merge_contextvars]) as logs:
        response = await client.get(url, headers={**owner.headers, "X-Request-ID": "enc-fail"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "enc-fail"
    assert len([line for line in logs if line["event"] == "request"]) == 1


class ClientGoneError(OSError):
    pass


def _in_progress() -> float:
    labels = {"method": "GET", "path": ROUTE, "status_code": "200", "app_name": "keel"}
    return REGISTRY.get_sample_value("keel_requests_in_progress", labels) or 0.0


def _served(status: int, path: str = ROUTE, method: str = "GET") -> float:
    labels = {"method": method, "path": path, "status_code": str(status), "app_name": "keel"}
    return REGISTRY.get_sample_value("keel_requests_total", labels) or 0.0


async def test_a_client_gone_mid_answer_leaves_no_request_in_progress(
    settings: Settings, people: People
) -> None:
    owner, _workspace, url = await _document(people)
    app = create_app(settings)
    async with serving(settings, app) as base, httpx.AsyncClient(base_url=base) as http:
        await _warm(http, url, owner)
        await _gone_mid_answer(app, url, owner)  # in the server's own event loop


async def _gone_mid_answer(app: Litestar, url: str, owner: Person) -> None:
    scope: Any = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"test"),
            (b"authorization", owner.headers["Authorization"].encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            raise ClientGoneError("client went away")

    before, served, answered = _in_progress(), _served(200), _answered()
    with capture_logs() as logs, pytest.raises(ClientGoneError):
        await app(scope, receive, send)
    assert _answered() == answered + 1, "the fast path answered"
    assert _in_progress() == before
    assert _served(200) == served + 1
    assert len([line for line in logs if line["event"] == "request"]) == 1


# --- observability of every answer ------------------------------------------------------


async def test_every_answer_has_a_request_id_one_access_line_and_its_metric(
    settings: Settings, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, workspace, url = await _document(people)
    missing = f"/v1/workspaces/{workspace}/foundation/{uuid.uuid4()}"
    tasks = f"/v1/workspaces/{workspace}/tasks"
    task = {"kind": "summarize", "input": {"text": "x"}}

    async def broken(self: GetMe) -> None:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(GetMe, "execute", broken)
    app = create_app(msgspec.structs.replace(settings, task_rate_per_minute=1))
    async with AsyncTestClient(app) as client:
        assert (await client.post(tasks, json=task, headers=owner.headers)).status_code == 202
        cases: list[tuple[str, str, dict[str, Any], int, str | None]] = [
            ("GET", url, {}, 401, ROUTE),
            ("GET", missing, {"headers": owner.headers}, 404, ROUTE),
            ("GET", "/v1/nowhere", {"headers": owner.headers}, 404, None),
            ("PUT", url, {"headers": owner.headers}, 405, None),
            (
                "POST",
                url.rsplit("/", 1)[0],
                {"headers": owner.headers, "content": b"x" * (settings.max_body_bytes + 1)},
                413,
                "/v1/workspaces/{workspace_id}/foundation",
            ),
            (
                "POST",
                tasks,
                {"headers": owner.headers, "json": task},
                429,
                "/v1/workspaces/{workspace_id}/tasks",
            ),
            ("GET", "/v1/me", {"headers": owner.headers}, 500, "/v1/me"),
        ]
        for method, target, options, status, route in cases:
            request_id = f"case-{status}-{uuid.uuid4().hex[:6]}"
            options.setdefault("headers", {})
            options["headers"] = {**options["headers"], "X-Request-ID": request_id}
            before = _served(status, route or "", method)
            with capture_logs([structlog.contextvars.merge_contextvars]) as logs:
                response = await client.request(method, target, **options)
            assert response.status_code == status, (target, response.text)
            assert response.headers["x-request-id"] == request_id
            assert response.headers["content-type"].startswith("application/problem+json")
            lines = [line for line in logs if line["event"] == "request"]
            assert len(lines) == 1, (status, lines)
            assert (lines[0]["status"], lines[0]["request_id"]) == (status, request_id)
            if route is not None:
                assert lines[0]["route"] == route
                assert _served(status, route, method) == before + 1, (status, route)


# --- the real server's stdout ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _stdout_of_a_real_server(
    command: list[str], settings: Settings, people: People, port: int
) -> list[str]:
    owner, _workspace, url = await _document(people)
    env = {
        **os.environ,
        "KEEL_DATABASE_URL": str(settings.database_url),
        "KEEL_REDIS_URL": str(settings.redis_url),
        "KEEL_JWT_SECRET": JWT_SECRET,
        "KEEL_JWT_AUDIENCE": AUDIENCE,
        "KEEL_HOST": "127.0.0.1",
        "KEEL_PORT": str(port),
    }
    server = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(300):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the server did not start")
            for _ in range(2):
                assert (await http.get(url, headers=owner.headers)).status_code == 200
            await http.get(url)
            await http.get("/v1/nowhere", headers={"X-Request-ID": 'quote"and\\slash'})
            await http.put(url, headers=owner.headers)
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(server.communicate(), 30)
    return out.decode().splitlines()


@pytest.mark.parametrize(
    "command",
    [
        [str(Path(sys.executable).parent / "keel"), "api"],
        [str(Path(sys.executable).parent / "uvicorn"), "entrypoints.http.asgi:app"],
    ],
    ids=["keel-api", "uvicorn"],
)
async def test_the_real_servers_stdout_is_json_lines(
    command: list[str], settings: Settings, people: People
) -> None:
    port = _free_port()
    if command[-1].endswith(":app"):
        command = [*command, "--host", "127.0.0.1", "--port", str(port)]
    lines = await _stdout_of_a_real_server(command, settings, people, port)
    parsed = []
    for line in lines:
        if line.strip():
            parsed.append(json.loads(line))
    access = [entry for entry in parsed if entry.get("event") == "request"]
    assert len(access) >= 5, lines
    assert {entry["status"] for entry in access} >= {200, 401, 404, 405}
