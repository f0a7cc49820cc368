"""The OpenAI-compatible provider against a real local HTTP server that speaks
the protocol: a streamed answer, a 429 with Retry-After, a 500, a 401."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.models.openai import OpenAICompatibleModel
from domain.errors import ModelError, TransientModelError

TOKENS = ["Keel ", "runs ", "agents."]


class ChatCompletions(BaseHTTPRequestHandler):
    """Answers by the last word of the user's message: ok, busy, broken, denied."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, self.headers.get("Authorization"), body))  # type: ignore[attr-defined]
        mode = body["messages"][-1]["content"].split()[-1]
        if mode == "busy":
            self._plain(429, {"Retry-After": "7"})
        elif mode == "broken":
            self._plain(500)
        elif mode == "denied":
            self._plain(401)
        else:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for token in TOKENS:
                chunk = {"choices": [{"delta": {"content": token}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")

    def _plain(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ChatCompletions)
    httpd.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def _model(server: ThreadingHTTPServer, timeout_s: float = 5) -> OpenAICompatibleModel:
    host, port = server.server_address[:2]
    return OpenAICompatibleModel(f"http://{host}:{port}/v1", "sk-test", "tiny", timeout_s)


async def test_a_streamed_answer_arrives_token_by_token(server: ThreadingHTTPServer) -> None:
    model = _model(server)
    try:
        tokens = [token async for token in model.stream("be brief", "say ok")]
    finally:
        await model.aclose()
    assert tokens == TOKENS
    path, auth, body = server.requests[-1]  # type: ignore[attr-defined]
    assert (path, auth, body["model"], body["stream"]) == (
        "/v1/chat/completions",
        "Bearer sk-test",
        "tiny",
        True,
    )
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


@pytest.mark.parametrize(
    ("prompt", "error", "retry_after"),
    [
        ("be busy", TransientModelError, 7.0),
        ("be broken", TransientModelError, None),
        ("be denied", ModelError, None),
    ],
)
async def test_errors_are_sorted_into_transient_and_final(
    server: ThreadingHTTPServer, prompt: str, error: type[ModelError], retry_after: float | None
) -> None:
    model = _model(server)
    try:
        with pytest.raises(error) as raised:
            [token async for token in model.stream("s", prompt)]
    finally:
        await model.aclose()
    assert type(raised.value) is error
    assert getattr(raised.value, "retry_after_s", None) == retry_after


async def test_an_unreachable_server_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = OpenAICompatibleModel(f"http://127.0.0.1:{port}/v1", None, "tiny", 1)
    try:
        with pytest.raises(TransientModelError):
            [token async for token in model.stream("s", "say ok")]
    finally:
        await model.aclose()
