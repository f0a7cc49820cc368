"""Request heads are bounded in size, field count and time (issue 17, class 5).

uvicorn read a request head of any size into memory and answered it (a
64 MiB head cost the server more than that), took any number of header
fields, and let a client take as long as it liked to send a head (one byte a
second, or nothing at all). Each test talks over a real socket to a real
server process, as it is deployed: `keel api`, and the documented plain
uvicorn line. Heads past a bound are refused (431, or a closed connection
when the server stops reading mid-send) without the server's peak memory
growing by anything like their size; a head that is too slow is cut off
(408) after KEEL_HEAD_TIMEOUT_S; ordinary requests still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from entrypoints.settings import Settings
from tests.conftest import AUDIENCE, JWT_SECRET, People

pytestmark = pytest.mark.slow  # real servers fed huge and slow request heads: `pytest -m slow`

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HEAD_TIMEOUT_S = 1.5
MiB = 1024 * 1024
COMMANDS = {
    "keel-api": [str(BIN / "keel"), "api"],
    "uvicorn": [
        str(BIN / "uvicorn"),
        "entrypoints.http.asgi:app",
        "--http",
        "entrypoints.http.asgi:Protocol",
    ],
}


@dataclass(frozen=True)
class Server:
    port: int
    pid: int

    def rss(self) -> int:
        """The process's resident memory now (VmRSS), in bytes."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def connect(self) -> socket.socket:
        raw = socket.create_connection(("127.0.0.1", self.port))
        raw.settimeout(10)
        return raw


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module", params=sorted(COMMANDS))
async def server(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Server]:
    port = _free_port()
    command = COMMANDS[request.param]
    if request.param == "uvicorn":
        command = [*command, "--host", "127.0.0.1", "--port", str(port)]
    env = {
        **os.environ,
        "KEEL_DATABASE_URL": str(settings.database_url),
        "KEEL_REDIS_URL": str(settings.redis_url),
        "KEEL_JWT_SECRET": JWT_SECRET,
        "KEEL_JWT_AUDIENCE": AUDIENCE,
        "KEEL_HOST": "127.0.0.1",
        "KEEL_PORT": str(port),
        "KEEL_HEAD_TIMEOUT_S": str(HEAD_TIMEOUT_S),
        "KEEL_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    served = Server(port, process.pid)
    try:
        for _ in range(400):
            if await asyncio.to_thread(_status_of, served, _get("/healthz")) == 200:
                break
            assert process.returncode is None, "the server exited"
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the server did not start")
        yield served
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 30)


def _get(path: str, *fields: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *fields, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(raw: socket.socket) -> bytes:
    """Everything the server sends until it closes (b"" if it reset the connection)."""
    received = b""
    try:
        while chunk := raw.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _status_of(served: Server, request: bytes) -> int | None:
    try:
        with served.connect() as raw:
            raw.sendall(request)
            answer = _answer(raw)
    except OSError:
        return None
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def _huge(kind: str, size: int) -> Iterator[bytes]:
    """A request head of about `size` bytes, in pieces, never finished."""
    piece = b"a" * MiB
    if kind == "url":
        yield b"GET /healthz?q="
        yield from (piece for _ in range(size // MiB))
        return
    yield b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if kind == "value":
        yield b"X-Big: "
        yield from (piece for _ in range(size // MiB))
    elif kind == "name":
        yield from (piece for _ in range(size // MiB))
    else:  # many fields of 1 KiB each, every one well-formed
        field = b"X-F: " + b"b" * 1017 + b"\r\n"
        yield from (field * 1024 for _ in range(size // MiB))


def _send_huge(served: Server, kind: str, size: int) -> tuple[bytes, int]:
    """Send the head as fast as the server reads it, then wait for its answer; the
    answer, and by how much the server's memory grew at most meanwhile (sampled)."""
    baseline, peak = served.rss(), 0
    with served.connect() as raw:
        try:
            for piece in _huge(kind, size):
                raw.sendall(piece)
                peak = max(peak, served.rss())
        except (BrokenPipeError, ConnectionResetError):
            pass  # it stopped reading: refused
        else:
            raw.shutdown(socket.SHUT_WR)
            time.sleep(0.5)  # the server holds all it has read while it waits for the end
            peak = max(peak, served.rss())
        return _answer(raw), peak - baseline


@pytest.mark.parametrize("kind", ["value", "url", "name", "fields"])
async def test_a_64_mib_head_is_refused_without_being_held(server: Server, kind: str) -> None:
    answer, grown = await asyncio.to_thread(_send_huge, server, kind, 64 * MiB)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert grown < 16 * MiB, f"the server's peak memory grew by {grown // MiB} MiB"
    assert await asyncio.to_thread(_status_of, server, _get("/healthz")) == 200


@pytest.mark.parametrize("fields", [101, 200, 5000])
async def test_too_many_header_fields_are_431(server: Server, fields: int) -> None:
    many = [f"X-Field-{i}: {i}" for i in range(fields)]
    with server.connect() as raw:
        raw.sendall(_get("/healthz", *many))
        answer = await asyncio.to_thread(_answer, raw)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"application/problem+json" in answer
    assert b"header fields" in answer


@pytest.mark.parametrize("size", [17 * 1024, 100 * 1024, 1 * MiB])
async def test_a_whole_head_over_the_limit_sent_at_once_is_431(server: Server, size: int) -> None:
    with server.connect() as raw:
        raw.sendall(_get("/healthz", "X-Big: " + "c" * size))
        answer = await asyncio.to_thread(_answer, raw)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def _trickle(served: Server, first: bytes, then: bytes, limit_s: float) -> tuple[bytes, bool]:
    """Send `first`, then `then` one byte a second (never ending the head) until the
    server closes or `limit_s` passes; what it answered, and whether it closed."""
    raw = served.connect()
    started = time.monotonic()
    answer = bytearray()
    closed = threading.Event()

    def read() -> None:
        answer.extend(_answer(raw))
        closed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        raw.sendall(first)
        for byte in then:
            if closed.wait(1.0) or time.monotonic() - started > limit_s:
                break
            raw.sendall(bytes([byte]))
    except OSError:
        pass
    closed.wait(limit_s)
    was_closed = closed.is_set()
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_RDWR)
    raw.close()
    reader.join(2)
    return bytes(answer), was_closed


SLOW = {
    "request line": (b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" * 10),
    "a field": (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: " + b"s" * 60),
    "many fields": (b"GET /healthz HTTP/1.1\r\n", b"X: 1\r\n" * 20),
}


@pytest.mark.parametrize("slow", sorted(SLOW))
async def test_a_head_sent_one_byte_a_second_is_cut_off(server: Server, slow: str) -> None:
    first, then = SLOW[slow]
    answer, _ = await asyncio.to_thread(_trickle, server, first, then, 6 * HEAD_TIMEOUT_S)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"application/problem+json" in answer


async def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    answer, closed = await asyncio.to_thread(_trickle, server, b"", b"", 6 * HEAD_TIMEOUT_S)
    assert (closed, answer) == (True, b""), "the server never closed an idle new connection"


async def test_a_slow_second_head_on_a_kept_alive_connection_is_cut_off(server: Server) -> None:
    keep = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answer, _ = await asyncio.to_thread(
        _trickle, server, keep + b"GET /healthz HTTP/1.1\r\n", b"X: 1\r\n" * 20, 6 * HEAD_TIMEOUT_S
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert b"HTTP/1.1 408 " in answer, answer[-300:]


async def test_ordinary_requests_still_work(server: Server, people: People) -> None:
    fine = [f"X-Field-{i}: {'v' * 100}" for i in range(90)]  # 90 fields, ~10 KiB
    assert await asyncio.to_thread(_status_of, server, _get("/healthz", *fine)) == 200
    assert await asyncio.to_thread(_status_of, server, _get("/healthz?" + "q" * 8000)) == 200
    assert await asyncio.to_thread(_status_of, server, _get("/v1/me")) == 401
    # A body far larger than the head limit is not the head's business.
    alice = await people.new()
    body = b'{"name": "Acme"' + b" " * 200_000 + b"}"
    fields = [f"{name}: {value}" for name, value in alice.headers.items()]
    post = _get("/v1/workspaces", *fields, "Content-Type: application/json")
    post = post.replace(b"GET ", b"POST ", 1)[:-2]
    post += f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    assert await asyncio.to_thread(_status_of, server, post) == 201
