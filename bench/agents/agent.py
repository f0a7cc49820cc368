"""One simulated AI agent: the loop it runs and the checks of what it saw.

Each step reads the workspace's foundation documents, writes and reads its
UI state, starts a `generate` task (sometimes an identical one again, which
the AI-result cache may answer; sometimes cancelled once it started), follows
the task's event stream to its end with a stream ticket, and fetches the task.
The event stream parser is written here because httpx reads lines, not
Server-Sent Events, and the benchmarks import nothing from tests/.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bench.agents.stats import Sample, is_error

REPEAT_SHARE = 0.3  # steps that start a task identical to an earlier one
CANCEL_SHARE = 0.1  # steps that cancel their task once it started
TASK_TIMEOUT_S = 60.0  # a stream with no ending by then is a lost ending (heartbeats keep it open)
TERMINAL = frozenset({"task.succeeded", "task.failed", "task.cancelled"})
ENDINGS = {"task.succeeded": "succeeded", "task.failed": "failed", "task.cancelled": "cancelled"}


@dataclass(frozen=True)
class AgentSpec:
    base: str
    token: str
    workspace: str
    prompts: tuple[str, ...]
    seed: int


@dataclass
class Tally:
    samples: list[Sample] = field(default_factory=list)
    steps: int = 0
    tasks: int = 0
    cached_tasks: int = 0
    cancelled: int = 0
    events: int = 0
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class Event:
    id: str
    type: str
    payload: dict[str, Any]


def _position(event_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = event_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def check_events(events: list[Event], task: dict[str, Any]) -> tuple[int, int, list[str]]:
    """(events lost, events duplicated, what was wrong) for one task's stream.

    Duplicated: an id seen before or not after the previous one. Lost: a
    missing `task.queued`, `task.started` or ending, an ending other than the
    task's status, or (a result the model wrote) tokens that do not add up to it.
    """
    duplicated, seen, last = 0, set(), (-1, -1)
    for event in events:
        where = _position(event.id)
        if event.id in seen or where <= last:
            duplicated += 1
        seen.add(event.id)
        last = max(last, where)
    types = [event.type for event in events]
    problems = [f"no {kind}" for kind in ("task.queued", "task.started") if kind not in types]
    endings = [kind for kind in types if kind in TERMINAL]
    if len(endings) != 1 or types[-1] != endings[0]:
        problems.append(f"endings {endings}")
    elif ENDINGS[endings[0]] != task.get("status"):
        problems.append(f"ended {endings[0]}, task is {task.get('status')}")
    if task.get("status") == "succeeded" and not task.get("cached"):
        text = "".join(e.payload["data"]["text"] for e in events if e.type == "task.token")
        if text != (task.get("result") or {}).get("text"):
            problems.append("tokens do not add up to the result")
    return len(problems), duplicated, [f"task {task.get('id')}: {p}" for p in problems]


async def messages(response: httpx.Response) -> AsyncIterator[tuple[str, str, str]]:
    """(id, event, data) of each message with data; comments are skipped."""
    fields: dict[str, list[str]] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield (
                    "".join(fields.get("id", [])),
                    "".join(fields.get("event", [])),
                    "\n".join(fields["data"]),
                )
            fields = {}
            continue
        name, _, value = line.partition(":")
        if name:
            fields.setdefault(name, []).append(value.removeprefix(" "))


class Agent:
    def __init__(self, spec: AgentSpec, tally: Tally, start_wall: float) -> None:
        self._spec, self._tally, self._start = spec, tally, start_wall
        self._random = random.Random(spec.seed)  # noqa: S311 - a load mix, not a secret
        self._ws = f"/v1/workspaces/{spec.workspace}"

    def _record(self, operation: str, began: float, status: int) -> None:
        now = time.perf_counter()
        at = time.time() - self._start
        self._tally.samples.append((operation, at, (now - began) * 1000, status))

    async def _call(
        self, http: httpx.AsyncClient, operation: str, method: str, url: str, **kw: Any
    ) -> httpx.Response | None:
        began = time.perf_counter()
        try:
            response = await http.request(method, url, **kw)
        except httpx.HTTPError:
            self._record(operation, began, 0)
            return None
        self._record(operation, began, response.status_code)
        return None if is_error(response.status_code) else response

    def client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self._spec.token}"}
        return httpx.AsyncClient(base_url=self._spec.base, headers=headers, timeout=60)

    async def run(
        self, http: httpx.AsyncClient, deadline: float, on_step: Callable[[], None]
    ) -> None:
        while time.time() < deadline:
            await self.step(http)
            self._tally.steps += 1
            on_step()

    async def step(self, http: httpx.AsyncClient) -> None:
        listing = await self._call(http, "foundation_list", "GET", f"{self._ws}/foundation")
        ids = [item["id"] for item in listing.json()["items"]] if listing else []
        for document in self._random.sample(ids, min(2, len(ids))):
            await self._call(http, "foundation_get", "GET", f"{self._ws}/foundation/{document}")
        key = f"{self._ws}/ui-state/agent-{self._spec.seed}"
        view = {"panel": "tasks", "scroll": self._random.randrange(1000), "open": ids[:3]}
        await self._call(http, "ui_state_put", "PUT", key, json=view)
        await self._call(http, "ui_state_get", "GET", key)
        repeat = self._random.random() < REPEAT_SHARE
        prompt = self._random.choice(self._spec.prompts)
        if not repeat:
            prompt = f"{prompt} ({uuid.uuid4().hex[:8]})"
        await self._task(http, prompt, repeat, self._random.random() < CANCEL_SHARE)

    async def _task(self, http: httpx.AsyncClient, prompt: str, repeat: bool, cancel: bool) -> None:
        began = time.perf_counter()
        body = {"kind": "generate", "input": {"prompt": prompt}}
        created = await self._call(http, "task_create", "POST", f"{self._ws}/tasks", json=body)
        if created is None:
            return
        task_id = created.json()["id"]
        ticket = await self._call(
            http, "stream_ticket", "POST", f"{self._ws}/stream-tickets", json={"task_id": task_id}
        )
        if ticket is None:
            return
        events = await self._follow(http, task_id, ticket.json()["ticket"], cancel)
        if events and events[-1].type in TERMINAL:
            self._record("task_end_to_end_repeat" if repeat else "task_end_to_end", began, 200)
        found = await self._call(http, "task_get", "GET", f"{self._ws}/tasks/{task_id}")
        if found is None:
            return
        task = found.json()
        self._tally.tasks += 1
        self._tally.cached_tasks += bool(task.get("cached"))
        self._tally.cancelled += task.get("status") == "cancelled"
        if task.get("started_at"):
            waited = _wall(task["started_at"]) - _wall(task["created_at"])
            self._tally.samples.append(
                ("task_enqueue_to_start", time.time() - self._start, waited * 1000, 200)
            )
        lost, duplicated, problems = check_events(events, task)
        self._tally.events += len(events)
        self._tally.lost += lost
        self._tally.duplicated += duplicated
        self._tally.problems.extend(problems[: max(0, 20 - len(self._tally.problems))])

    async def _follow(
        self, http: httpx.AsyncClient, task_id: str, ticket: str, cancel: bool
    ) -> list[Event]:
        events: list[Event] = []
        url = f"{self._ws}/tasks/{task_id}/events"
        began = time.perf_counter()
        try:
            async with (
                asyncio.timeout(TASK_TIMEOUT_S),
                http.stream("GET", url, params={"ticket": ticket}) as response,
            ):
                self._record("task_events", began, response.status_code)
                if response.status_code != 200:
                    return events
                async for event_id, kind, data in messages(response):
                    if not events:
                        self._record("sse_first_event", began, 200)
                    payload = json.loads(data)
                    late = time.time() - _wall(payload["at"])
                    self._tally.samples.append(
                        ("sse_publish_to_client", time.time() - self._start, late * 1000, 200)
                    )
                    events.append(Event(event_id, kind, payload))
                    if cancel and kind == "task.started":
                        cancel = False
                        await self._call(
                            http, "task_cancel", "POST", f"{self._ws}/tasks/{task_id}/cancel"
                        )
                    if kind in TERMINAL:
                        break
        except (httpx.HTTPError, TimeoutError) as error:
            self._tally.problems.append(f"task {task_id}: stream broke: {error!r}"[:200])
        return events


def _wall(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()
