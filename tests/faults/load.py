"""Agents' load for fault scenarios, and what it saw.

`keel bench` measures speed; this driver only keeps the books a fault
scenario needs, over a real server (`tests.live`): each agent, with a
workspace and a foundation document of its own, loops over what agents do
(read the foundation documents, PUT and GET UI state, now and then
create a workspace, start a task) and
follows each task's SSE stream to its end, reconnecting with
`Last-Event-ID` when the stream breaks. It counts requests, statuses, the
tasks it created and the terminal events each task's stream delivered.

`may_fail` names the operations allowed to answer 503 (always with
Retry-After); any other error status of any operation is a failure, and so
is any 5xx but 503, and an SSE stream delivering ids out of order or a
second terminal event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

import httpx

from tests.conftest import People, Person
from tests.live import messages

TERMINAL = ("task.succeeded", "task.failed", "task.cancelled")
OPERATIONS = (
    "foundation_list",
    "foundation_get",
    "ui_put",
    "ui_get",
    "task_create",
    "stream",
    "workspace_create",
)
NEW_WORKSPACE_EVERY = 4  # rounds: a multi-step write (the workspace and its owner)
FOLLOWED_PER_AGENT = 2  # streams an agent follows at once; past it, it starts no task
STREAM_RETRY_S = 0.2
FOLLOW_FOR_S = 120.0


@dataclass(frozen=True)
class Agent:
    person: Person
    workspace: uuid.UUID
    document: str

    @property
    def base(self) -> str:
        return f"/v1/workspaces/{self.workspace}"


async def agents(http: httpx.AsyncClient, count: int) -> list[Agent]:
    people = People(http)

    async def one(index: int) -> Agent:
        person = await people.new()
        workspace = await people.workspace(person, f"agent {index}")
        body = {"kind": "brand", "title": f"Voice {index}", "content": {"n": index}, "tags": []}
        return Agent(person, workspace, await people.document(workspace, person, body))

    return list(await asyncio.gather(*(one(index) for index in range(count))))


def _position(event_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = event_id.partition("-")
    return int(milliseconds), int(sequence or 0)


@dataclass
class Load:
    http: httpx.AsyncClient
    may_fail: Collection[str] = ()
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    terminal: Counter[str] = field(default_factory=Counter)  # task id → terminal events
    delivered: dict[str, set[str]] = field(default_factory=dict)  # task id → event ids
    workspace_of: dict[str, uuid.UUID] = field(default_factory=dict)
    resets: int = 0  # `stream.reset`: the stream's events were gone from Redis
    _followers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def errors(self) -> Counter[int]:
        return Counter({status: n for status, n in self.statuses.items() if status >= 400})

    def events_lost(self, stored: dict[str, list[str]]) -> int:
        """Events of a task that Redis holds (`stored`: ids by task) but its
        stream never delivered, and tasks whose stream ended without its ending."""
        missed = sum(len(set(ids) - self.delivered[task]) for task, ids in stored.items())
        return missed + sum(1 for task in self.created if not self.terminal[task])

    def check(self, operation: str, response: httpx.Response, *expected: int) -> bool:
        """Count the answer; whether it is one of `expected`."""
        status = response.status_code
        self.requests[operation] += 1
        self.statuses[status] += 1
        where = f"{operation} {response.request.method} {response.request.url.path}"
        if status in expected:
            return True
        if status == 503 and operation in self.may_fail:
            if not response.headers.get("Retry-After", "").isdigit():
                self.failures.append(f"{where}: 503 without Retry-After")
        elif status != 404 or operation != "ui_get":  # a PUT refused (503) left no state
            body = "" if operation == "stream" else response.text[:300]
            self.failures.append(f"{where}: {status} {body}")
        return False

    async def run(self, agents: list[Agent], stop: asyncio.Event) -> None:
        """Every agent loops until `stop`; then every stream is followed to its end."""

        async def one(agent: Agent) -> None:
            n = 0
            while not stop.is_set():
                await self.step(agent, n)
                n += 1
                await asyncio.sleep(0.02)

        await asyncio.gather(*(one(agent) for agent in agents))
        await self.drain()

    async def drain(self) -> None:
        while self._followers:
            await asyncio.gather(*list(self._followers))

    async def step(self, agent: Agent, n: int) -> None:
        """One round of an agent; a transport error (a dropped connection) counts as a failure."""
        try:
            await self._step(agent, n)
        except httpx.TransportError as error:
            self.failures.append(f"agent {agent.person.id}: {error!r}")

    async def _step(self, agent: Agent, n: int) -> None:
        http, headers, base = self.http, agent.person.headers, agent.base
        self.check("foundation_list", await http.get(f"{base}/foundation", headers=headers), 200)
        document = await http.get(f"{base}/foundation/{agent.document}", headers=headers)
        self.check("foundation_get", document, 200)
        put = await http.put(f"{base}/ui-state/panel", json={"step": n}, headers=headers)
        self.check("ui_put", put, 200)
        self.check("ui_get", await http.get(f"{base}/ui-state/panel", headers=headers), 200)
        if n % NEW_WORKSPACE_EVERY == 0:
            created = await http.post("/v1/workspaces", json={"name": f"{n}"}, headers=headers)
            self.check("workspace_create", created, 201)
        mine = [task for task in self._followers if task.get_name() == str(agent.person.id)]
        if len(mine) >= FOLLOWED_PER_AGENT:
            return
        body = {"kind": "summarize", "input": {"text": f"{agent.person.id} step {n}"}}
        started = await http.post(f"{base}/tasks", json=body, headers=headers)
        if self.check("task_create", started, 202):
            task_id = str(started.json()["id"])
            self.created.append(task_id)
            self.terminal[task_id] = 0
            self.delivered[task_id] = set()
            self.workspace_of[task_id] = agent.workspace
            follower = asyncio.create_task(self.follow(agent, task_id), name=str(agent.person.id))
            self._followers.add(follower)
            follower.add_done_callback(self._followers.discard)

    async def follow(self, agent: Agent, task_id: str) -> None:
        """Read the task's stream to its end, resuming after every break."""
        url = f"{agent.base}/tasks/{task_id}/events"
        last: str | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FOLLOW_FOR_S
        while loop.time() < deadline:
            headers = dict(agent.person.headers)
            if last is not None:
                headers["Last-Event-ID"] = last
            try:
                async with self.http.stream("GET", url, headers=headers) as response:
                    if response.status_code == 204:  # resumed after the end
                        self.check("stream", response, 204)
                        return
                    if self.check("stream", response, 200):
                        async for message in messages(response):
                            last = self._seen(task_id, message.event, message.id, last)
                    if self.terminal[task_id]:
                        return
                    # Refused (503), or ended early (`: events unavailable`, a retry hint): resume.
            except httpx.TransportError:
                pass  # the stream broke: resume
            await asyncio.sleep(STREAM_RETRY_S)
        self.failures.append(f"task {task_id}: its stream did not end in {FOLLOW_FOR_S:.0f} s")

    def _seen(
        self, task_id: str, event: str | None, event_id: str | None, last: str | None
    ) -> str | None:
        if event == "stream.reset":
            self.resets += 1
            return last
        if event_id is None:
            return last
        self.delivered[task_id].add(event_id)
        if last is not None and _position(event_id) <= _position(last):
            self.failures.append(f"task {task_id}: event {event_id} after {last}")
        if event in TERMINAL:
            self.terminal[task_id] += 1
            if self.terminal[task_id] > 1:
                self.failures.append(f"task {task_id}: a second terminal event ({event})")
        return event_id
