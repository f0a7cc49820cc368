"""Attacks on event streams, stream tickets and the per-user stream cap.

Every test runs a real server (tests/live.py) on the real Postgres and Redis.
Eight of them broke when they were written (slots lapsing under a busy or
stalled stream, slots leaked by clients gone before the stream started,
rebuilt endings and resets reusing the client's own id, unbounded or
non-ASCII positions, the console missing a gap); all are fixed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
import uuid
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest
import structlog
from redis.asyncio import Redis
from sqlalchemy import text

from adapters.redis.events import RedisEventBus, stream_key
from adapters.redis.streams import slots_key
from domain.events import EventType, StreamRef, TaskEvent
from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.live import Message, live, messages, serving, stream_status

pytestmark = pytest.mark.slow  # streams held open, slow readers and caps: `pytest -m slow`

TERMINAL = {"task.succeeded", "task.failed", "task.cancelled"}
NEW_TASK = {"kind": "summarize", "input": {"text": "review"}}


async def _task(http: httpx.AsyncClient, person: Person, workspace: uuid.UUID) -> uuid.UUID:
    response = await http.post(
        f"/v1/workspaces/{workspace}/tasks", json=NEW_TASK, headers=person.headers
    )
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


async def _ticket(
    http: httpx.AsyncClient, person: Person, workspace: uuid.UUID, task: uuid.UUID | None = None
) -> str:
    body = {"task_id": str(task)} if task else None
    response = await http.post(
        f"/v1/workspaces/{workspace}/stream-tickets", json=body, headers=person.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["ticket"])


async def _read(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], timeout_s: float = 4.0
) -> list[Message]:
    """Every message (comments included) until the stream ends or `timeout_s` passes."""
    seen: list[Message] = []

    async def collect() -> None:
        async with http.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            async for message in messages(response):
                seen.append(message)
                if message.event in TERMINAL or message.retry is not None:
                    return

    with suppress(TimeoutError):
        await asyncio.wait_for(collect(), timeout_s)
    return seen


def _events(seen: list[Message]) -> list[Message]:
    return [message for message in seen if message.event is not None]


def _finished_task_events(workspace: uuid.UUID, task: uuid.UUID) -> list[TaskEvent]:
    return [
        TaskEvent(workspace, task, EventType.QUEUED),
        TaskEvent(workspace, task, EventType.STARTED, {"attempt": 1}),
        TaskEvent(workspace, task, EventType.PROGRESS, {"progress": 0.5, "message": "half"}),
        TaskEvent(workspace, task, EventType.SUCCEEDED, {"result": {"summary": "done"}}),
    ]


async def _finish_in_postgres(owner_engine: Any, task: uuid.UUID) -> None:
    """Mark a task succeeded directly (as the schema owner), as a worker would have."""
    async with owner_engine.begin() as connection:
        await connection.execute(
            text(
                "update tasks set status = 'succeeded', result = '{\"summary\": \"done\"}',"
                " finished_at = now(), started_at = now() where id = :id"
            ),
            {"id": task},
        )


async def _open_raw(
    base: str, path: str, headers: dict[str, str], receive_buffer: int | None = None
) -> socket.socket:
    """A blocking socket with an open event stream (headers read), for abrupt closes."""
    parts = urlsplit(base)
    assert parts.hostname is not None
    assert parts.port is not None
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:  # before connecting, so the window stays small
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    raw.connect((parts.hostname, parts.port))
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    raw.settimeout(5)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.to_thread(raw.recv, 4096)
        assert chunk, "the server closed the stream before answering"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return raw


def _reset(raw: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0): a client that vanishes without a FIN."""
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


async def _slots(redis: Redis, user: uuid.UUID) -> int:
    """Slots held now (a slot's score is when it lapses)."""
    return int(await redis.zcount(slots_key(user), int(time.time() * 1000), "+inf"))


async def _until(predicate: Any, timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(await predicate())


# --- Stream tickets ----------------------------------------------------------------------


async def test_a_ticket_is_not_a_bearer_token_anywhere(settings: Settings, people: People) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings) as http:
        ticket = await _ticket(http, alice, workspace)
        url = f"/v1/workspaces/{workspace}/events"
        for headers in (
            {"Authorization": f"Bearer {ticket}"},
            {"Authorization": ticket},
            {"Cookie": f"ticket={ticket}"},
        ):
            assert await stream_status(http, url, headers) == 401, headers
        # The ticket was never spent by those attempts, and a ticket cannot mint tickets.
        mint = await http.post(f"/v1/workspaces/{workspace}/stream-tickets?ticket={ticket}")
        assert mint.status_code == 401
        assert (await http.get(f"/v1/me?ticket={ticket}")).status_code == 401
        assert await stream_status(http, f"{url}?ticket={ticket}") == 200


async def test_a_ticket_only_works_on_the_exact_stream_paths(
    settings: Settings, people: People
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings) as http:
        task = await _task(http, alice, workspace)
        base = f"/v1/workspaces/{workspace}"
        for path in (
            f"{base}/tasks/{task}",
            f"{base}/tasks",
            f"{base}/ui-state",
            f"{base}/members",
            f"{base}",
            f"/V1/workspaces/{workspace}/events",
            f"{base}/EVENTS",
            f"{base}/tasks/{task}/events/../../../members",
        ):
            ticket = await _ticket(http, alice, workspace)
            response = await http.get(f"{path}?ticket={ticket}")
            assert response.status_code in {401, 404}, (path, response.status_code)
        # A trailing slash routes to the same stream (Litestar normalises the path):
        # without a credential it is refused like the canonical path.
        assert await stream_status(http, f"{base}/events/") == 401
        assert await stream_status(http, f"{base}//events") == 401


async def test_a_ticket_is_bound_to_its_user_and_spent_once_under_a_race(
    settings: Settings, people: People
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings, sse_streams_per_user=50) as http:
        ticket = await _ticket(http, alice, workspace)
        url = f"/v1/workspaces/{workspace}/events?ticket={ticket}"
        statuses = await asyncio.gather(*(stream_status(http, url) for _ in range(12)))
        assert sorted(statuses) == [200] + [401] * 11
        # Percent-encoded or padded forms of a spent ticket are other strings: 401.
        for variant in (ticket.upper(), ticket + "%00", ticket + "=", f"%20{ticket}"):
            assert (
                await stream_status(http, f"/v1/workspaces/{workspace}/events?ticket={variant}")
                == 401
            )


async def test_a_task_ticket_opens_neither_its_workspace_nor_another_task_of_a_stranger(
    settings: Settings, people: People
) -> None:
    alice, mallory = await people.new(), await people.new()
    hers, mine = await people.workspace(alice), await people.workspace(mallory)
    async with live(settings) as http:
        her_task = await _task(http, alice, hers)
        my_task = await _task(http, mallory, mine)
        # Mallory's own ticket, pointed at Alice's workspace and task, with every id swapped.
        for path in (
            f"/v1/workspaces/{hers}/tasks/{her_task}/events",
            f"/v1/workspaces/{hers}/tasks/{my_task}/events",
            f"/v1/workspaces/{mine}/tasks/{her_task}/events",
            f"/v1/workspaces/{hers}/events",
        ):
            ticket = await _ticket(http, mallory, mine, my_task)
            assert await stream_status(http, f"{path}?ticket={ticket}") == 404, path
            ticket = await _ticket(http, mallory, mine)
            assert await stream_status(http, f"{path}?ticket={ticket}") == 404, path


async def test_tickets_never_reach_the_access_log(settings: Settings, people: People) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    with structlog.testing.capture_logs() as logs:
        async with live(settings) as http:
            ticket = await _ticket(http, alice, workspace)
            url = f"/v1/workspaces/{workspace}/events?ticket={ticket}&last_event_id=1-0"
            assert await stream_status(http, url) == 200
            assert await stream_status(http, url) == 401
            assert await stream_status(
                http, f"/v1/workspaces/{workspace}/nope?ticket={ticket}"
            ) in {
                401,
                404,
            }
    assert any(entry.get("event") == "request" for entry in logs), logs
    assert ticket not in repr(logs)


async def test_tickets_never_reach_stdlib_logs(
    settings: Settings, people: People, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    caplog.set_level(logging.DEBUG)
    async with live(settings) as http:
        ticket = await _ticket(http, alice, workspace)
        await stream_status(http, f"/v1/workspaces/{workspace}/events?ticket={ticket}")
        await stream_status(http, f"/v1/workspaces/{workspace}/events?ticket={ticket}")
    # The test's own HTTP client logs the URLs it requests: the server's records only.
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert server, "the server logged nothing: the check would prove nothing"
    assert ticket not in "\n".join(r.getMessage() for r in server)


# --- Hostile input: never a 500 -----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "x" * 8000,
        "1-0\r\nX-Injected: yes",
        "-1-0",
        "1-",
        "-",
        "1-0-0",
        "1.5-0",
        " 1-0",
        "0x10-0",
        "1_000-0",
        "+1-0",
        "1" * 21 + "-0",
    ],
)
async def test_hostile_resume_positions_are_400(
    settings: Settings, people: People, value: str
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings) as http:
        task = await _task(http, alice, workspace)
        for path in (
            f"/v1/workspaces/{workspace}/events",
            f"/v1/workspaces/{workspace}/tasks/{task}/events",
        ):
            query = await http.get(path, params={"last_event_id": value}, headers=alice.headers)
            assert query.status_code == 400, (value, query.status_code)
            assert query.headers["content-type"] == "application/problem+json"
            if value == value.strip() and "\r" not in value:  # h11 refuses these itself
                header = await http.get(path, headers={**alice.headers, "Last-Event-ID": value})
                assert header.status_code == 400, (value, header.status_code)


async def test_a_position_beyond_redis_ids_is_400(
    settings: Settings, people: People, bus: RedisEventBus
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings) as http:
        task = await _task(http, alice, workspace)
        await bus.publish(*_finished_task_events(workspace, task)[:2])
        path = f"/v1/workspaces/{workspace}/tasks/{task}/events"
        for value in ("99999999999999999999-0", "18446744073709551615-18446744073709551615"):
            url = httpx.URL(path, params={"last_event_id": value})
            async with http.stream("GET", url, headers=alice.headers) as response:
                body = (await asyncio.wait_for(response.aread(), 3)).decode()
            # Today: 200, then ": events unavailable" with retry: 1000, on every reconnect.
            assert response.status_code == 400, (value, response.status_code, body)


async def test_non_ascii_digits_are_not_a_position(settings: Settings, people: People) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings) as http:
        for value in ("\u0661\u0662-\u0660", "\uff11-\uff10"):
            url = httpx.URL(f"/v1/workspaces/{workspace}/events", params={"last_event_id": value})
            assert await stream_status(http, str(url), alice.headers) == 400, value


async def test_bad_paths_and_parameters_on_stream_routes_are_never_500(
    settings: Settings, people: People
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings) as http:
        task = await _task(http, alice, workspace)
        base = f"/v1/workspaces/{workspace}"
        probes: list[tuple[str, str, Any]] = [
            ("GET", "/v1/workspaces/not-a-uuid/events", None),
            ("GET", f"{base}/tasks/not-a-uuid/events", None),
            ("GET", f"{base}/tasks/{uuid.uuid4()}/events", None),
            ("GET", f"{base}/events?last_event_id=", None),
            ("GET", f"{base}/events?last_event_id=1-0&last_event_id=2-0", None),
            ("GET", f"{base}/events?ticket=&ticket=", None),
            ("POST", f"{base}/events", None),
            ("POST", f"{base}/stream-tickets", {"task_id": "nope"}),
            ("POST", f"{base}/stream-tickets", {"task_id": str(uuid.uuid4())}),
            ("POST", f"{base}/stream-tickets", {"task_id": str(task), "user_id": str(alice.id)}),
            ("POST", f"{base}/stream-tickets", {"workspace_id": str(uuid.uuid4())}),
            ("POST", f"{base}/stream-tickets", [1, 2]),
            ("POST", f"{base}/stream-tickets", "x"),
        ]
        for method, url, body in probes:
            request = http.build_request(method, url, json=body, headers=alice.headers)
            response = await http.send(request, stream=True)
            try:
                assert response.status_code < 500, (method, url, body, response.status_code)
                assert response.status_code != 201 or url.endswith("stream-tickets"), url
            finally:
                await response.aclose()
        # Mass assignment: a ticket body with a foreign user or workspace is refused.
        for body in ({"user_id": str(uuid.uuid4())}, {"workspace_id": str(uuid.uuid4())}):
            response = await http.post(f"{base}/stream-tickets", json=body, headers=alice.headers)
            assert response.status_code == 400, (body, response.status_code)


# --- Resume: nothing lost, nothing repeated --------------------------------------------------


async def test_resuming_at_the_last_id_of_a_live_task_repeats_nothing(
    settings: Settings, people: People, bus: RedisEventBus
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings, sse_heartbeat_s=0.3) as http:
        task = await _task(http, alice, workspace)
        first = _finished_task_events(workspace, task)
        await bus.publish(*first[:3])
        path = f"/v1/workspaces/{workspace}/tasks/{task}/events"
        before = _events(await _read(http, path, alice.headers, timeout_s=0.8))
        assert [m.event for m in before][-3:] == ["task.queued", "task.started", "task.progress"]
        last = before[-1].id
        assert last is not None

        async def later() -> None:
            await asyncio.sleep(0.3)
            await bus.publish(first[3])

        publishing = asyncio.create_task(later())
        after = _events(await _read(http, path, {**alice.headers, "Last-Event-ID": last}))
        await publishing
    assert [m.event for m in after] == ["task.succeeded"]
    assert after[0].id not in {m.id for m in before}


async def test_a_workspace_position_resumes_a_task_stream_without_gaps(
    settings: Settings, people: People, bus: RedisEventBus
) -> None:
    """Ids are shared by a workspace's stream and its tasks' streams: the last id seen on
    another task's stream resumes this one at the same instant."""
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings) as http:
        one, two = await _task(http, alice, workspace), await _task(http, alice, workspace)
        await bus.publish(TaskEvent(workspace, two, EventType.QUEUED))
        await bus.publish(TaskEvent(workspace, one, EventType.QUEUED))
        await bus.publish(*_finished_task_events(workspace, two)[1:])
        one_path = f"/v1/workspaces/{workspace}/tasks/{one}/events"
        mark = _events(await _read(http, one_path, alice.headers, timeout_s=0.5))[-1].id
        assert mark is not None
        two_path = f"/v1/workspaces/{workspace}/tasks/{two}/events"
        rest = _events(await _read(http, two_path, {**alice.headers, "Last-Event-ID": mark}))
    assert [m.event for m in rest] == ["task.started", "task.progress", "task.succeeded"]


async def test_resuming_after_the_terminal_event_repeats_nothing(
    settings: Settings, people: People, bus: RedisEventBus, owner_engine: Any
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings) as http:
        task = await _task(http, alice, workspace)
        await bus.publish(*_finished_task_events(workspace, task))
        await _finish_in_postgres(owner_engine, task)
        path = f"/v1/workspaces/{workspace}/tasks/{task}/events"
        whole = _events(await _read(http, path, alice.headers))
        assert whole[-1].event == "task.succeeded"
        again = await http.get(path, headers={**alice.headers, "Last-Event-ID": str(whole[-1].id)})
    # Nothing more will come: 204 makes EventSource stop reconnecting.
    assert again.status_code == 204, again.text
    assert again.content == b""


async def test_an_ending_made_from_postgres_carries_a_new_id(
    settings: Settings, people: People, bus: RedisEventBus, owner_engine: Any, redis: Redis
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings) as http:
        task = await _task(http, alice, workspace)
        await bus.publish(*_finished_task_events(workspace, task)[:3])
        path = f"/v1/workspaces/{workspace}/tasks/{task}/events"
        before = _events(await _read(http, path, alice.headers, timeout_s=0.8))
        last = before[-1].id
        assert last is not None
        # The worker finished (Postgres), and Redis lost every event, the ending too.
        await _finish_in_postgres(owner_engine, task)
        key = stream_key(StreamRef(workspace, task))
        await redis.delete(key, f"{key}:ended", stream_key(StreamRef(workspace)))
        resumed = _events(await _read(http, path, {**alice.headers, "Last-Event-ID": last}))
    assert resumed[-1].event == "task.succeeded", [m.event for m in resumed]
    seen = {m.id for m in before}
    assert resumed[-1].id not in seen, "the ending reuses an id the client already holds"


# --- The per-user stream cap ---------------------------------------------------------------


async def test_a_stream_cut_by_a_reset_gives_its_slot_back_promptly(
    settings: Settings, people: People, redis: Redis
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    changed = msgspec.structs.replace(settings, sse_streams_per_user=2)
    async with serving(changed) as base:
        for _ in range(3):
            raw = await _open_raw(base, f"/v1/workspaces/{workspace}/events", alice.headers)
            assert await _until(lambda: _held(redis, alice.id), 2.0), "an open stream holds no slot"
            _reset(raw)
            assert await _until(lambda: _released(redis, alice.id), 2.0), (
                "a vanished client still holds its slot"
            )


async def _released(redis: Redis, user: uuid.UUID) -> bool:
    return await _slots(redis, user) == 0


async def _held(redis: Redis, user: uuid.UUID) -> bool:
    return await _slots(redis, user) >= 1


async def test_a_ticket_stream_cut_mid_flow_gives_its_slot_back(
    settings: Settings, people: People, redis: Redis, bus: RedisEventBus
) -> None:
    """A busy stream (events flowing, the feed suspended in a send) cut by a RST."""
    alice = await people.new()
    workspace = await people.workspace(alice)
    changed = msgspec.structs.replace(settings, sse_streams_per_user=1)
    async with serving(changed) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        task = await _task(http, alice, workspace)
        ticket = await _ticket(http, alice, workspace, task)
        raw = await _open_raw(
            base, f"/v1/workspaces/{workspace}/tasks/{task}/events?ticket={ticket}", {}
        )
        tokens = [
            TaskEvent(workspace, task, EventType.TOKEN, {"text": "x" * 2000}) for _ in range(300)
        ]
        await bus.publish(*tokens)
        await asyncio.sleep(0.2)
        _reset(raw)
        assert await _until(lambda: _released(redis, alice.id), 2.0)
        assert await stream_status(http, f"/v1/workspaces/{workspace}/events", alice.headers) == 200


async def test_a_busy_stream_keeps_counting_against_the_cap(
    settings: Settings, people: People, bus: RedisEventBus, redis: Redis
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    path = f"/v1/workspaces/{workspace}/events"
    async with (
        live(settings, sse_streams_per_user=1, sse_heartbeat_s=0.3) as http,
        http.stream("GET", path, headers=alice.headers) as busy,
    ):
        assert busy.status_code == 200
        received = 0

        async def consume() -> None:
            nonlocal received
            async for message in messages(busy):
                received += message.event is not None

        reading = asyncio.create_task(consume())
        task = uuid.uuid4()
        for _ in range(25):  # 2.5 s of activity, a lapse period is 0.9 s
            await bus.publish(TaskEvent(workspace, task, EventType.TOKEN, {"text": "."}))
            await asyncio.sleep(0.1)
        assert received > 10
        still_counted = await _slots(redis, alice.id)
        second = await stream_status(http, path, alice.headers)
        reading.cancel()
    assert (still_counted, second) == (1, 429)


async def test_tickets_do_not_bypass_the_cap(settings: Settings, people: People) -> None:
    alice = await people.new()
    workspace, other = await people.workspace(alice), await people.workspace(alice, "Other")
    async with live(settings, sse_streams_per_user=2) as http:
        first = await _ticket(http, alice, workspace)
        second = await _ticket(http, alice, other)
        third = await _ticket(http, alice, workspace)
        async with (
            http.stream("GET", f"/v1/workspaces/{workspace}/events?ticket={first}") as one,
            http.stream("GET", f"/v1/workspaces/{other}/events?ticket={second}") as two,
        ):
            assert (one.status_code, two.status_code) == (200, 200)
            third_status = await stream_status(
                http, f"/v1/workspaces/{workspace}/events?ticket={third}"
            )
            assert third_status == 429
            # Nor the token.
            assert await stream_status(http, f"/v1/workspaces/{other}/events", alice.headers) == 429


async def test_a_client_that_stops_reading_keeps_counting_or_is_cut_off(
    settings: Settings, people: People, bus: RedisEventBus, redis: Redis
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    changed = msgspec.structs.replace(
        settings, sse_streams_per_user=1, sse_buffer_events=20, sse_heartbeat_s=0.3
    )
    async with serving(changed) as base, httpx.AsyncClient(base_url=base, timeout=5) as http:
        raw = await _open_raw(
            base, f"/v1/workspaces/{workspace}/events", alice.headers, receive_buffer=4096
        )
        try:
            task = uuid.uuid4()
            big = "y" * 16_000
            await bus.publish(
                *(TaskEvent(workspace, task, EventType.TOKEN, {"text": big}) for _ in range(200))
            )
            await asyncio.sleep(1.5)  # more than a lapse period (3 heartbeats) without reading
            counted = await _slots(redis, alice.id)
            second = await stream_status(http, f"/v1/workspaces/{workspace}/events", alice.headers)
            ended = await asyncio.to_thread(_drain_until_ended, raw)
        finally:
            _reset(raw)
    # Either the server ended the reader's stream (its last message a retry hint,
    # buffered for it in the kernel, not in the server), or it still counts.
    assert ended or (counted, second) == (1, 429), (ended, counted, second)


def _drain_until_ended(raw: socket.socket) -> bool:
    """Read what the server sent; True when it is an ended event stream."""
    received = b""
    raw.settimeout(5)
    try:
        while not received.endswith(b"0\r\n\r\n"):
            chunk = raw.recv(65536)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        return False
    return b"retry: " in received[-2000:] and received.endswith(b"0\r\n\r\n")


async def test_a_client_gone_before_the_stream_starts_leaves_no_slot(
    settings: Settings, people: People, redis: Redis
) -> None:
    """The request arrives, the client vanishes at once: the slot taken while opening
    the stream must be given back although the feed may never have been iterated."""
    alice = await people.new()
    workspace = await people.workspace(alice)
    changed = msgspec.structs.replace(settings, sse_streams_per_user=3)
    async with serving(changed) as base:
        parts = urlsplit(base)
        assert parts.hostname is not None
        assert parts.port is not None
        lines = [f"GET /v1/workspaces/{workspace}/events HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in alice.headers.items()]
        for _ in range(6):
            raw = socket.create_connection((parts.hostname, parts.port))
            raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            _reset(raw)
            await asyncio.sleep(0.05)
        released = await _until(lambda: _released(redis, alice.id), 2.0)
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            again = await stream_status(http, f"/v1/workspaces/{workspace}/events", alice.headers)
    assert (released, again) == (True, 200)


# --- The console -------------------------------------------------------------------------


async def test_the_console_notices_a_gap_in_the_stream(
    settings: Settings, people: People, redis: Redis, browser: Any
) -> None:
    from entrypoints.http.app import create_app, drain_event_streams
    from tests.browser.test_console import Console, _stored_result
    from tests.integration.test_tasks import _worker_settings, running_worker

    owner = await people.new()
    workspace = await people.workspace(owner, "Gap")
    worker = _worker_settings(settings, sim_token_delay_ms=50)
    first = create_app(worker)
    async with running_worker(worker):
        async with serving(worker, first) as base:
            page = Console(browser, base)
            await asyncio.to_thread(page.start, owner, workspace, f"gap note {uuid.uuid4()}")
            before = await asyncio.to_thread(page.wait_for_tokens, 3)
            drain_event_streams(first)
        # While no server runs, Redis loses the task's events (restarted empty, trimmed).
        await asyncio.sleep(0.3)
        task = uuid.UUID(before.task)
        key = stream_key(StreamRef(workspace, task))
        await redis.delete(key, stream_key(StreamRef(workspace)))
        async with serving(worker, port=urlsplit(base).port or 0):
            seen = await asyncio.to_thread(page.wait_until_final)
            result = await _stored_result(base, owner, workspace, seen.task)
    assert seen.status == "succeeded", seen
    assert seen.output == result, "the page shows an output with tokens missing"


@pytest.fixture(scope="module")
def browser() -> Any:
    from tests.browser import test_console

    yield from test_console.browser.__wrapped__()  # type: ignore[attr-defined]
