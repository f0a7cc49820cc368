"""One fault scenario: a real API and worker, their Postgres and Redis behind
fault proxies, agents' load, a fault in the middle, then the books.

The API (uvicorn in the test's loop) and an in-process worker use the
database of the fault tests' own (tests/faults/conftest.py) and the Redis
they are given, both through a `FaultProxy`. Load runs for a moment, the
fault happens, load goes on for a moment after it heals; then every task
the agents created must end exactly once (the database's ledger and the
streams' terminal events), no answer may be a failure by the scenario's
rules, and a round of every agent after it is answered without any error:
recovery without restarting Keel. One summary line is printed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.redis.client import create_redis
from adapters.redis.events import stream_key
from domain.events import StreamRef
from entrypoints.settings import Settings
from tests.conftest import Database
from tests.faults import ledger
from tests.faults.load import OPERATIONS, Agent, Load, agents
from tests.faults.proxy import (
    FaultProxy,
    postgres_target,
    redis_target,
    through_postgres,
    through_redis,
)
from tests.integration.test_tasks import running_worker
from tests.live import live

AGENTS = 8
WARM_UP_S = 1.5
AFTER_S = 1.5
TASKS_END_WITHIN_S = 90


@dataclass(frozen=True)
class Stack:
    http: httpx.AsyncClient
    agents: list[Agent]
    postgres: FaultProxy
    redis: FaultProxy
    owner: AsyncEngine
    database: Database
    redis_url: str  # the server's own, not through the proxy


@asynccontextmanager
async def stack(
    settings: Settings, database: Database, redis_url: str, owner: AsyncEngine
) -> AsyncIterator[Stack]:
    async with (
        FaultProxy(postgres_target(database.runtime_url)) as postgres,
        FaultProxy(redis_target(redis_url)) as redis,
    ):
        proxied = msgspec.structs.replace(
            settings,
            database_url=through_postgres(database.runtime_url, postgres.port),
            redis_url=through_redis(redis.port),
            redis_cluster=False,
            db_pool_size=4,  # every connection serves many agents
            db_command_timeout_s=2.0,  # a connection cut silently: 503s for 2 s, not a hang
            queue_prefix="{load-" + uuid.uuid4().hex[:12] + "}",
            sim_token_delay_ms=5,
            retry_base_ms=20,
            retry_cap_ms=200,
            task_lease_s=3,
            task_redispatch_s=2,
            task_rate_per_minute=100_000,
            sse_streams_per_user=100,
        )
        async with live(proxied) as http, running_worker(proxied):
            members = await agents(http, AGENTS)
            yield Stack(http, members, postgres, redis, owner, database, redis_url)


async def repeated(for_s: float, every_s: float, action: Callable[[], Awaitable[object]]) -> None:
    """`action()` again and again, `every_s` apart, for `for_s`: a fault that recurs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + for_s
    while loop.time() < deadline:
        await action()
        await asyncio.sleep(every_s)


async def under_load(
    stack: Stack, scenario: str, fault: Callable[[], Awaitable[object]], may_fail: Collection[str]
) -> Load:
    load = Load(stack.http, may_fail)
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stack.agents, stop))
    await asyncio.sleep(WARM_UP_S)
    try:
        await fault()
    finally:
        stack.postgres.heal()
        stack.redis.heal()
    await asyncio.sleep(AFTER_S)
    stop.set()
    await running
    counts = await ledger.settled(stack.owner, load.created, TASKS_END_WITHIN_S)
    found = await ledger.outcomes(stack.owner, load.created)
    stored = await stored_events(stack.redis_url, load)
    lost = load.events_lost(stored)
    kept = sum(len(ids) for ids in stored.values())
    print(
        "\n"
        + ledger.summary(
            scenario,
            sum(load.requests.values()),
            load.errors,
            len(load.created),
            ledger.final(counts),
            f"{lost} lost of {kept} kept",
        )
    )
    context = f"{scenario}: {dict(load.statuses)}, tasks {dict(counts)}"
    assert not load.failures, f"{len(load.failures)} bad answers ({context}):\n" + "\n".join(
        load.failures[:20]
    )
    assert load.created, f"no task was created: {context}"
    assert lost == 0, f"{lost} event(s) kept in Redis never reached their stream: {context}"
    users = [str(agent.person.id) for agent in stack.agents]
    half_done = await ledger.ownerless_workspaces(stack.owner, users)
    assert half_done == 0, f"{half_done} workspace(s) without their owner: {context}"
    ledger.check_integrity(found, load.created, context)
    await recovered(stack)
    return load


async def stored_events(redis_url: str, load: Load) -> dict[str, list[str]]:
    """The ids of the events Redis holds for each task the load created."""
    client = create_redis(redis_url)
    try:
        stored = {}
        for task, workspace in load.workspace_of.items():
            key = stream_key(StreamRef(workspace, uuid.UUID(task)))
            stored[task] = [_text(event_id) for event_id, _ in await client.xrange(key)]
        return stored
    finally:
        await client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def recovered(stack: Stack) -> None:
    """After the fault, a round of every agent is answered without error (the
    first may still meet a connection that died: one settling round may 503),
    and a new task of each runs and its stream delivers its one ending."""
    settling = Load(stack.http, OPERATIONS)
    await asyncio.gather(*(settling.step(agent, 10_000) for agent in stack.agents))
    after = Load(stack.http)
    await asyncio.gather(*(after.step(agent, 10_001) for agent in stack.agents))
    await asyncio.gather(settling.drain(), after.drain())
    states = await ledger.states(stack.owner, settling.created + after.created)
    failures = settling.failures + after.failures
    assert not failures, f"after the fault, tasks {dict(states)}:\n" + "\n".join(failures[:20])
    assert len(after.created) == len(stack.agents), dict(after.statuses)
    assert all(after.terminal[task] == 1 for task in after.created), dict(after.terminal)
