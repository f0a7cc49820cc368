"""A full Redis: `maxmemory` reached under `noeviction` (what Keel runs, for
BullMQ), so every write is refused with an OOM error while reads and deletes
still work. On a Redis of this module's own (the session's Redis is shared
by every test), filled on purpose:

- task creation still succeeds (202): tasks are rows in Postgres, the outbox
  relays them to the queue once Redis takes writes again, and they run once;
- every other endpoint that needs a Redis write answers 503 `Storage full`
  with Retry-After; reads (and deletes) keep working, a foundation write
  included, and never serve what it replaced from the cache;
- `keel_redis_full_total` counts the refusals, and one log line says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError
from structlog.testing import capture_logs

from adapters.redis import client as redis_client
from adapters.redis.client import create_redis
from entrypoints.devstack.redis import EmbeddedRedis
from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.integration.test_tasks import SUMMARY, running_worker, wait_until
from tests.live import live, stream_status

FILLER = b"x" * 65536
DOC = {"kind": "brand", "title": "Voice", "content": {"tone": "warm"}, "tags": []}


@pytest.fixture(scope="module")
def own_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis-full")), persist=False)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
async def own_redis(own_redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(own_redis_url)
    yield client
    await empty(client)
    await client.aclose()


@pytest.fixture
def full_settings(settings: Settings, own_redis_url: str) -> Settings:
    return msgspec.structs.replace(
        settings,
        redis_url=own_redis_url,
        queue_prefix="{full-" + uuid.uuid4().hex[:8] + "}",
        sim_token_delay_ms=0,
        task_redispatch_s=2,
        task_lease_s=5,
    )


@pytest.fixture
async def http(full_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with live(full_settings) as client:
        yield client


async def fill(redis: Redis) -> None:
    """Fill Redis until it refuses a write, then set maxmemory to half of what
    it holds: every write is refused from now on, whatever its size (a limit
    just below `used_memory` is not enough: client buffers shrink and free
    more than one filler between INFO and the next write)."""
    await redis.config_set("maxmemory-policy", "noeviction")
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory", used + 4 * 1024 * 1024)
    with contextlib.suppress(OutOfMemoryError):
        for i in range(1000):
            await redis.set(f"filler:{i}", FILLER)
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory", used // 2)
    with pytest.raises(OutOfMemoryError):
        await redis.set("one-more", b"1")


async def empty(redis: Redis) -> None:
    """Free the memory: drop the filler, lift the limit."""
    names = [name async for name in redis.scan_iter(match="filler:*", count=1000)]
    if names:
        await redis.delete(*names)
    await redis.config_set("maxmemory", 0)


def _full_count(what: str) -> float:
    return REGISTRY.get_sample_value("keel_redis_full_total", {"what": what}) or 0.0


def _storage_full(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "Storage full"
    assert "Redis is full" in response.json()["detail"]
    assert int(response.headers["retry-after"]) > 0


async def _scene(http: httpx.AsyncClient) -> tuple[Person, str, str]:
    people = People(http)
    owner = await people.new()
    workspace = await people.workspace(owner)
    base = f"/v1/workspaces/{workspace}"
    put = await http.put(f"{base}/ui-state/kept", json={"open": True}, headers=owner.headers)
    assert put.status_code == 200
    document = await people.document(workspace, owner, DOC)
    read = await http.get(f"{base}/foundation/{document}", headers=owner.headers)
    assert read.status_code == 200  # cached from now on
    return owner, base, document


async def test_writes_answer_503_storage_full_with_retry_after_a_metric_and_a_log_line(
    http: httpx.AsyncClient, own_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, base, _ = await _scene(http)
    headers = owner.headers
    monkeypatch.setattr(redis_client, "_logged", {}, raising=False)
    before = _full_count("UI state")
    await fill(own_redis)
    with capture_logs() as logs:
        _storage_full(await http.put(f"{base}/ui-state/new", json=1, headers=headers))
        _storage_full(await http.put(f"{base}/ui-state/kept", json=2, headers=headers))
    full_lines = [line for line in logs if line["event"] == "redis is full"]
    assert [(line["what"], line["log_level"]) for line in full_lines] == [("UI state", "error")]
    assert _full_count("UI state") == before + 2
    scraped = (await http.get("/metrics")).text
    assert 'keel_redis_full_total{what="UI state"}' in scraped

    _storage_full(await http.post(f"{base}/stream-tickets", json={}, headers=headers))
    assert await stream_status(http, f"{base}/events", headers) == 503
    await empty(own_redis)
    assert (await http.put(f"{base}/ui-state/new", json=1, headers=headers)).status_code == 200


async def test_reads_and_deletes_keep_working_and_a_write_never_leaves_a_stale_read(
    http: httpx.AsyncClient, own_redis: Redis
) -> None:
    owner, base, document = await _scene(http)
    headers = owner.headers
    await fill(own_redis)
    # Reads keep working, and so do deletes (they free memory).
    kept = await http.get(f"{base}/ui-state/kept", headers=headers)
    assert (kept.status_code, kept.json()["value"]) == (200, {"open": True})
    listed = await http.get(f"{base}/ui-state", headers=headers)
    assert [item["key"] for item in listed.json()["items"]] == ["kept"]
    assert (await http.get(base, headers=headers)).status_code == 200
    assert (await http.get(f"{base}/tasks", headers=headers)).status_code == 200
    doc_url = f"{base}/foundation/{document}"
    assert (await http.get(doc_url, headers=headers)).json()["title"] == "Voice"

    # A foundation write lands in Postgres; its cache invalidation cannot write
    # a new generation, so it deletes the old one: no read serves the old title.
    patched = await http.patch(
        doc_url, json={"title": "Voice 2"}, headers={**headers, "If-Match": '"1"'}
    )
    assert patched.status_code == 200, patched.text
    for _ in range(3):
        assert (await http.get(doc_url, headers=headers)).json()["title"] == "Voice 2"
    bundle = await http.get(f"{base}/foundation", headers=headers)
    assert [item["title"] for item in bundle.json()["items"]] == ["Voice 2"]

    assert (await http.delete(f"{base}/ui-state/kept", headers=headers)).status_code == 204
    assert (await http.get(f"{base}/ui-state/kept", headers=headers)).status_code == 404


async def _status(http: httpx.AsyncClient, owner: Person, url: str) -> Any:
    return (await http.get(url, headers=owner.headers)).json()["status"]


async def test_tasks_are_accepted_while_full_and_run_once_memory_frees(
    http: httpx.AsyncClient, own_redis: Redis, full_settings: Settings
) -> None:
    people = People(http)
    owner = await people.new()
    workspace = await people.workspace(owner)
    base = f"/v1/workspaces/{workspace}"
    await fill(own_redis)
    created = [
        await http.post(f"{base}/tasks", json=SUMMARY, headers=owner.headers) for _ in range(3)
    ]
    assert [response.status_code for response in created] == [202] * 3
    urls = [f"{base}/tasks/{response.json()['id']}" for response in created]
    before = _full_count("the task queue")
    async with running_worker(full_settings, concurrency=2):
        await wait_until(lambda: _refused_since(before), timeout_s=30)
        # The relay could not enqueue: the tasks wait in the outbox, unstarted.
        assert [await _status(http, owner, url) for url in urls] == ["queued"] * 3
        await empty(own_redis)
        for url in urls:
            await wait_until(lambda url=url: _succeeded(http, owner, url), timeout_s=60)
    for url in urls:
        task = (await http.get(url, headers=owner.headers)).json()
        assert (task["status"], task["attempts"]) == ("succeeded", 1)


async def _refused_since(before: float) -> bool:
    return _full_count("the task queue") > before


async def _succeeded(http: httpx.AsyncClient, owner: Person, url: str) -> bool:
    status = await _status(http, owner, url)
    assert status in ("queued", "running", "succeeded"), status
    await asyncio.sleep(0)
    return bool(status == "succeeded")
