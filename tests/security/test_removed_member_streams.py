"""A removed member's open event stream delivers nothing after the removal
(issue 17, class 7).

Membership used to be checked when a stream opened and then once per
heartbeat period (15 s by default): a member removed while streaming went on
receiving the events of tasks created after the removal (25 in one run).
Now the feed checks the (cached, invalidated-on-change) membership before
each batch of events, after they were published: not one event published
after the removal reaches the removed member, and the stream ends with its
documented `closed:` comment (no retry hint; a reconnect is 404).

Every test runs with the default heartbeat, so the timer cannot be what ends
the stream, and watches an owner's stream of the same workspace to know
when every event after the removal has been delivered.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress

import httpx
import pytest

from adapters.redis.events import RedisEventBus
from domain.events import EventType, TaskEvent
from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.integration.test_tasks import _worker_settings, running_worker
from tests.live import Message, live, messages, stream_status

pytestmark = pytest.mark.slow  # streams of tasks a real worker runs: `pytest -m slow`

AFTER = 25  # events published after the removal
TERMINAL = {"task.succeeded", "task.failed", "task.cancelled"}


class _Watch:
    """Every message of one open stream, collected in the background until it ends."""

    def __init__(self, response: httpx.Response) -> None:
        self.response, self.seen = response, list[Message]()
        self.ended, self.changed = asyncio.Event(), asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in messages(self.response):
                self.seen.append(message)
                self.changed.set()
        finally:
            self.ended.set()

    def ids(self) -> set[str]:
        return {message.id for message in self.seen if message.id is not None}

    async def until(self, done: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async def wait() -> None:
            while not done():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout_s)


async def _open(
    stack: AsyncExitStack, http: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> _Watch:
    response = await stack.enter_async_context(http.stream("GET", url, headers=headers))
    assert response.status_code == 200, await response.aread()
    watch = _Watch(response)
    stack.callback(watch.reader.cancel)
    return watch


async def _task(http: httpx.AsyncClient, person: Person, workspace: uuid.UUID) -> uuid.UUID:
    response = await http.post(
        f"/v1/workspaces/{workspace}/tasks",
        json={"kind": "summarize", "input": {"text": "after"}},
        headers=person.headers,
    )
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


async def _credential(
    http: httpx.AsyncClient, person: Person, workspace: uuid.UUID, task: uuid.UUID | None, kind: str
) -> tuple[str, dict[str, str]]:
    """A query string and headers that open the stream as `person`."""
    if kind == "token":
        return "", person.headers
    body = {"task_id": str(task)} if task else None
    response = await http.post(
        f"/v1/workspaces/{workspace}/stream-tickets", json=body, headers=person.headers
    )
    assert response.status_code == 201, response.text
    return f"?ticket={response.json()['ticket']}", {}


def _assert_cut_off(watch: _Watch, before: set[str], after: set[str]) -> None:
    leaked = watch.ids() & after
    assert not leaked, f"{len(leaked)} of {len(after)} events after the removal were delivered"
    assert before <= watch.ids(), "the events before the removal should have arrived"
    assert watch.ended.is_set(), "the removed member's stream is still open"
    last = watch.seen[-1]
    assert any(comment.startswith("closed: ") for comment in last.comments), last
    assert last.retry is None, "a removed member is not told to reconnect"


@pytest.mark.parametrize("remover", ["owner", "admin", "themselves"])
@pytest.mark.parametrize("credential", ["token", "ticket"])
@pytest.mark.parametrize("stream", ["workspace", "task"])
async def test_a_removed_member_gets_no_event_published_after_the_removal(
    settings: Settings,
    people: People,
    bus: RedisEventBus,
    stream: str,
    credential: str,
    remover: str,
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    admin = await people.join(workspace, owner, "admin")
    member = await people.join(workspace, owner, "member")
    by = {"owner": owner, "admin": admin, "themselves": member}[remover]
    base = f"/v1/workspaces/{workspace}"
    async with live(settings) as http, AsyncExitStack() as stack:
        watched = await _task(http, owner, workspace)
        url = f"{base}/events" if stream == "workspace" else f"{base}/tasks/{watched}/events"
        query, headers = await _credential(
            http, member, workspace, watched if stream == "task" else None, credential
        )
        removed = await _open(stack, http, url + query, headers)
        observer = await _open(stack, http, url, owner.headers)

        async def publish(*events: TaskEvent) -> set[str]:
            """Publish and wait until the owner has them; their ids."""
            known = observer.ids()
            await bus.publish(*events)
            await observer.until(lambda: len(observer.ids()) >= len(known) + len(events))
            return observer.ids() - known

        before = await publish(TaskEvent(workspace, watched, EventType.STARTED, {"attempt": 1}))
        await removed.until(lambda: before <= removed.ids())
        response = await http.delete(f"{base}/members/{member.id}", headers=by.headers)
        assert response.status_code == 204, response.text
        if stream == "workspace":  # tasks created after the removal
            created = [await _task(http, owner, workspace) for _ in range(AFTER)]
            events = [TaskEvent(workspace, task, EventType.QUEUED) for task in created]
        else:
            events = [
                TaskEvent(workspace, watched, EventType.PROGRESS, {"progress": i / AFTER})
                for i in range(AFTER)
            ]
        after = await publish(*events)
        with suppress(TimeoutError):
            await asyncio.wait_for(removed.ended.wait(), 5)
        _assert_cut_off(removed, before, after)
        assert await stream_status(http, url, member.headers) == 404


async def test_a_removed_member_sees_none_of_the_tasks_run_after_the_removal(
    settings: Settings, people: People
) -> None:
    """End to end: real tasks, run by a real worker, after the removal."""
    owner = await people.new()
    workspace = await people.workspace(owner)
    member = await people.join(workspace, owner, "viewer")
    worker = _worker_settings(settings)
    url = f"/v1/workspaces/{workspace}/events"
    async with live(worker) as http, AsyncExitStack() as stack:
        removed = await _open(stack, http, url, member.headers)
        observer = await _open(stack, http, url, owner.headers)
        response = await http.delete(
            f"/v1/workspaces/{workspace}/members/{member.id}", headers=owner.headers
        )
        assert response.status_code == 204
        created = {str(await _task(http, owner, workspace)) for _ in range(5)}
        async with running_worker(worker):
            await observer.until(
                lambda: (
                    {m.json["task_id"] for m in observer.seen if m.event in TERMINAL} == created
                ),
                60,
            )
        with suppress(TimeoutError):
            await asyncio.wait_for(removed.ended.wait(), 5)
        _assert_cut_off(removed, set(), observer.ids())
