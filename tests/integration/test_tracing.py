"""Tracing, end to end: a real `keel api` and `keel worker` with KEEL_TRACING=true
export OTLP over HTTP to a receiver this test runs; the spans must continue the
caller's `traceparent` through the request, its SQL and Redis commands, the
task outbox and queue, and the worker's attempt."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from entrypoints.devstack.process import spawn
from entrypoints.devstack.services import Services
from entrypoints.http.auth import issue_token
from tests.conftest import AUDIENCE, Database

pytestmark = pytest.mark.slow  # a trace collector and a worker: `pytest -m slow`

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tracing-test-secret-" + "t" * 44


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, str]


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: what Jaeger or a collector would get."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Span] = []

    def collect(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    self.spans.append(
                        Span(
                            resource.get("service.name", ""),
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            attributes,
                        )
                    )


def _value(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return str(getattr(value, kind)) if kind else ""


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.collect(body)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keel() -> list[str]:
    return [sys.executable, "-m", "entrypoints.cli"]


@pytest.fixture
def system(
    database: Database, services: Services, receiver: Receiver, tmp_path: Path
) -> Iterator[str]:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("KEEL_")}
    env.update(
        PYTHONUNBUFFERED="1",
        KEEL_DATABASE_URL=database.runtime_url,
        KEEL_REDIS_URL=services.redis_url,
        KEEL_JWT_SECRET=SECRET,
        KEEL_PORT=str(port),
        KEEL_QUEUE_PREFIX="{trace-" + uuid.uuid4().hex[:12] + "}",
        KEEL_SIM_TOKEN_DELAY_MS="1",
        KEEL_TRACING="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.server_address[1]}",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    started = [
        spawn([*_keel(), name], death_signal=signal.SIGKILL, log=tmp_path / f"{name}.log", env=env)
        for name in ("api", "worker")
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail((tmp_path / "api.log").read_text())
        yield base
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _wait_for(receiver: Receiver, found: object, seconds: float = 20) -> list[Span]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        spans = list(receiver.spans)
        if found(spans):  # type: ignore[operator]
            return spans
        time.sleep(0.2)
    return list(receiver.spans)


def test_a_task_continues_the_trace_of_the_request_that_created_it(
    system: str, receiver: Receiver
) -> None:
    headers = {"Authorization": f"Bearer {issue_token(SECRET, AUDIENCE, uuid.uuid4())}"}
    with httpx.Client(base_url=system, headers=headers, timeout=10) as api:
        workspace = api.post("/v1/workspaces", json={"name": "Traced"}).json()["id"]
        traceparent, trace_id, caller_span = _traceparent()
        created = api.post(
            f"/v1/workspaces/{workspace}/tasks",
            json={"kind": "summarize", "input": {"text": "follow me"}},
            headers={"traceparent": traceparent},
        )
        assert created.status_code == 202, created.text
        task = created.json()["id"]
        deadline = time.monotonic() + 30
        while api.get(f"/v1/workspaces/{workspace}/tasks/{task}").json()["status"] != "succeeded":
            assert time.monotonic() < deadline, "the task did not finish"
            time.sleep(0.1)

    def complete(spans: list[Span]) -> bool:
        return any(s.name == "task attempt" and s.trace_id == trace_id for s in spans)

    spans = [s for s in _wait_for(receiver, complete) if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in spans}
    (server,) = [s for s in spans if s.parent_id == caller_span]
    assert (server.service, server.name) == ("keel-api", "POST /v1/workspaces/{workspace_id}/tasks")
    api_children = [s for s in spans if s.service == "keel-api" and s.span_id != server.span_id]
    assert any(s.attributes.get("db.system") == "postgresql" for s in api_children), spans
    assert any(s.attributes.get("db.system") == "redis" for s in api_children), spans
    (attempt,) = [s for s in spans if s.name == "task attempt"]
    assert attempt.service == "keel-worker"
    # The worker's span descends from the creating request (through the task row).
    assert attempt.parent_id in by_id
    assert attempt.attributes["keel.task_id"] == task
    worker_sql = [s for s in spans if s.service == "keel-worker" and s.parent_id == attempt.span_id]
    assert any(s.attributes.get("db.system") == "postgresql" for s in worker_sql), spans


def test_an_untraced_request_starts_its_own_trace_and_a_cached_read_is_traced_too(
    system: str, receiver: Receiver
) -> None:
    headers = {"Authorization": f"Bearer {issue_token(SECRET, AUDIENCE, uuid.uuid4())}"}
    with httpx.Client(base_url=system, headers=headers, timeout=10) as api:
        workspace = api.post("/v1/workspaces", json={"name": "Traced"}).json()["id"]
        body = {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}}
        document = api.post(f"/v1/workspaces/{workspace}/foundation", json=body).json()["id"]
        url = f"/v1/workspaces/{workspace}/foundation/{document}"
        assert api.get(url).status_code == 200
        parents = []
        for _ in range(2):  # the second read is served from the cache
            traceparent, trace_id, caller_span = _traceparent()
            assert api.get(url, headers={"traceparent": traceparent}).status_code == 200
            parents.append((trace_id, caller_span))

    def complete(spans: list[Span]) -> bool:
        return all(any(s.parent_id == parent for s in spans) for _, parent in parents)

    spans = _wait_for(receiver, complete)
    for trace_id, parent in parents:
        assert [s.trace_id for s in spans if s.parent_id == parent] == [trace_id]
    roots = [s for s in spans if s.service == "keel-api" and not s.parent_id]
    assert any(s.name == "POST /v1/workspaces" for s in roots), [s.name for s in roots]
