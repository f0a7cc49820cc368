"""`keel doctor --api URL` against a real `keel api` server: all ok; and
against what is not Keel's API (nothing listening, another HTTP server),
each failing check is named."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest

from entrypoints.doctor.api import api_checks
from entrypoints.doctor.report import Status
from entrypoints.settings import Settings
from tests.live import live


async def test_a_running_api_passes(settings: Settings) -> None:
    async with live(settings) as http:
        checks = await api_checks(str(http.base_url))
    assert [(c.name, c.status) for c in checks] == [
        ("api.ready", Status.OK),
        ("api.authentication", Status.OK),
        ("api.openapi", Status.OK),
        ("api.metrics", Status.OK),
    ], checks


class _Other(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def other_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Other)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_another_server_fails_every_check_but_readiness(other_server: str) -> None:
    checks = await api_checks(other_server)
    assert [(c.name, c.status) for c in checks] == [
        ("api.ready", Status.OK),
        ("api.authentication", Status.FAIL),
        ("api.openapi", Status.FAIL),
        ("api.metrics", Status.FAIL),
    ]


async def test_nothing_listening_is_one_failure() -> None:
    checks = await asyncio.wait_for(api_checks("http://127.0.0.1:9"), 30)
    assert [(c.name, c.status) for c in checks] == [("api.reachable", Status.FAIL)]
