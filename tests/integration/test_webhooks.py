"""Task webhooks end to end: a task's final state is recorded for delivery in
the same transaction, a worker sends it signed (checked by the Standard
Webhooks library in a real receiver), retries with the task backoff, gives
up after the bound, and sends again what a dead sender left leased."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.webhooks import PgWebhookDeliveries
from adapters.webhooks.sender import StandardWebhookSender
from application.deliver_webhooks import DeliverWebhooks
from application.webhooks import WebhookSettings
from domain.retry import Backoff
from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.integration.test_tasks import SUMMARY, _worker_settings, running_worker, wait_until
from tests.live import live
from tests.receiver import HANG, receiving

pytestmark = pytest.mark.slow  # deliveries, retries and dead senders: `pytest -m slow`

FAST = WebhookSettings(allow_private=True, max_attempts=3, lease_s=1, backoff=Backoff(20, 100))


@asynccontextmanager
async def allowing_private(settings: Settings) -> AsyncIterator[People]:
    """The API as a development setup runs it: webhooks may target 127.0.0.1."""
    async with live(settings, webhook_allow_private=True) as http:
        yield People(http)


async def hooked(people: People, url: str) -> tuple[Person, uuid.UUID, str]:
    """An owner, their workspace, and its webhook's secret."""
    owner = await people.new()
    workspace = await people.workspace(owner)
    response = await people.client.put(
        f"/v1/workspaces/{workspace}/webhook", json={"url": url}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return owner, workspace, response.json()["secret"]


async def cancelled_task(http: httpx.AsyncClient, owner: Person, workspace: uuid.UUID) -> str:
    """A task cancelled while queued: final at once, no worker needed."""
    tasks = f"/v1/workspaces/{workspace}/tasks"
    task = (await http.post(tasks, json=SUMMARY, headers=owner.headers)).json()["id"]
    cancelled = await http.post(f"{tasks}/{task}/cancel", headers=owner.headers)
    assert cancelled.json()["status"] == "cancelled"
    return str(task)


async def deliveries(owner_engine: AsyncEngine, workspace: uuid.UUID) -> list[Any]:
    async with owner_engine.connect() as conn:
        result = await conn.execute(
            sa.text(
                "select id, task_id, status, attempts, last_error from webhook_deliveries"
                " where workspace_id = :w order by created_at"
            ),
            {"w": workspace},
        )
        return list(result)


async def settled(owner_engine: AsyncEngine, workspace: uuid.UUID) -> bool:
    rows = await deliveries(owner_engine, workspace)
    return bool(rows) and all(row.status != "pending" for row in rows)


def delivering(engine: AsyncEngine, settings: WebhookSettings = FAST) -> DeliverWebhooks:
    return DeliverWebhooks(
        PgWebhookDeliveries(engine), StandardWebhookSender(settings.allow_private, 2), settings
    )


async def run_until_settled(
    deliver: DeliverWebhooks, owner_engine: AsyncEngine, workspace: uuid.UUID
) -> None:
    async def step() -> bool:
        await deliver.execute()
        return await settled(owner_engine, workspace)

    await wait_until(step, timeout_s=30)


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def test_a_finished_task_is_delivered_once_signed_by_the_worker(
    settings: Settings, owner_engine: AsyncEngine
) -> None:
    async with receiving(settings) as receiver, allowing_private(settings) as people:
        owner, workspace, secret = await hooked(people, receiver.url)
        tasks = f"/v1/workspaces/{workspace}/tasks"
        started = await people.client.post(tasks, json=SUMMARY, headers=owner.headers)
        task_id = started.json()["id"]
        worker = _worker_settings(settings, webhook_allow_private=True)
        async with running_worker(worker):
            await wait_until(lambda: settled(owner_engine, workspace))
        task = (await people.client.get(f"{tasks}/{task_id}", headers=owner.headers)).json()
    (row,) = await deliveries(owner_engine, workspace)
    assert (row.status, row.attempts, str(row.task_id)) == ("delivered", 1, task_id)
    (payload,) = receiver.verified(secret)
    assert receiver.received[0].headers["webhook-id"] == str(row.id)
    assert payload["type"] == "task.succeeded"
    data = payload["data"]
    assert {k: data[k] for k in ("task_id", "workspace_id", "kind", "status", "error")} == {
        "task_id": task_id,
        "workspace_id": str(workspace),
        "kind": "summarize",
        "status": "succeeded",
        "error": None,
    }
    assert data["result"] == task["result"]
    assert data["result"]["summary"]
    for name in ("created_at", "started_at", "finished_at"):
        assert _at(data[name]) == _at(task[name]), name
    assert _at(payload["timestamp"]) is not None


async def test_the_delivery_commits_with_the_state_change_and_is_retried_until_2xx(
    settings: Settings, engine: AsyncEngine, owner_engine: AsyncEngine
) -> None:
    async with receiving(settings, 500, 500) as receiver, allowing_private(settings) as people:
        owner, workspace, secret = await hooked(people, receiver.url)
        task_id = await cancelled_task(people.client, owner, workspace)
        # Durable before any worker or Redis is involved.
        (pending,) = await deliveries(owner_engine, workspace)
        assert (pending.status, pending.attempts, str(pending.task_id)) == ("pending", 0, task_id)
        await run_until_settled(delivering(engine), owner_engine, workspace)
    (row,) = await deliveries(owner_engine, workspace)
    assert (row.status, row.attempts, row.last_error) == (
        "delivered",
        3,
        "the receiver answered HTTP 500",
    )
    payloads = receiver.verified(secret)
    assert len(payloads) == 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {str(row.id)}
    assert all(p["type"] == "task.cancelled" for p in payloads)
    assert payloads[0]["data"]["task_id"] == task_id


async def test_a_receiver_that_is_down_is_given_up_on_after_the_bound(
    settings: Settings, engine: AsyncEngine, owner_engine: AsyncEngine
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    async with allowing_private(settings) as people:
        owner, workspace, _ = await hooked(people, f"http://127.0.0.1:{closed_port}/hook")
        await cancelled_task(people.client, owner, workspace)
    deliver = delivering(engine)
    await run_until_settled(deliver, owner_engine, workspace)
    (row,) = await deliveries(owner_engine, workspace)
    assert (row.status, row.attempts) == ("failed", FAST.max_attempts)
    assert row.last_error.startswith("connection failed")
    await deliver.execute()
    assert (await deliveries(owner_engine, workspace))[0].attempts == FAST.max_attempts


async def test_a_claim_whose_sender_died_is_delivered_by_a_later_run(
    settings: Settings, engine: AsyncEngine, owner_engine: AsyncEngine
) -> None:
    async with receiving(settings) as receiver, allowing_private(settings) as people:
        owner, workspace, secret = await hooked(people, receiver.url)
        await cancelled_task(people.client, owner, workspace)
        store = PgWebhookDeliveries(engine)
        # A worker claims it and dies before sending (its lease: 1 s).
        claimed = await store.claim(1000, FAST.lease_s, FAST.max_attempts)
        (abandoned,) = [d for d in claimed if d.workspace_id == workspace]
        deliver = delivering(engine)
        await deliver.execute()
        assert receiver.received == []  # still leased
        await run_until_settled(deliver, owner_engine, workspace)
    (row,) = await deliveries(owner_engine, workspace)
    assert (row.status, row.attempts) == ("delivered", 2)
    assert len(receiver.verified(secret)) == 1
    # The dead worker's attempt, answering late, changes nothing.
    assert not await store.give_up(abandoned, "too late")
    assert (await deliveries(owner_engine, workspace))[0].status == "delivered"


async def test_a_delivery_survives_a_worker_stopped_mid_attempt(
    settings: Settings, owner_engine: AsyncEngine
) -> None:
    async with receiving(settings, HANG) as receiver, allowing_private(settings) as people:
        owner, workspace, secret = await hooked(people, receiver.url)
        await cancelled_task(people.client, owner, workspace)
        worker = _worker_settings(
            settings, webhook_allow_private=True, webhook_lease_s=1, webhook_timeout_s=30
        )

        async def sent() -> bool:
            return len(receiver.received) == 1

        async with running_worker(worker):
            await wait_until(sent)  # the receiver holds the request: the attempt is in flight
        (stopped,) = await deliveries(owner_engine, workspace)
        assert (stopped.status, stopped.attempts) == ("pending", 1)
        async with running_worker(worker):
            await wait_until(lambda: settled(owner_engine, workspace))
    (row,) = await deliveries(owner_engine, workspace)
    assert (row.status, row.attempts) == ("delivered", 2)
    assert len(receiver.verified(secret)) == 2
    assert {r.headers["webhook-id"] for r in receiver.received} == {str(row.id)}


async def test_the_last_attempt_of_a_dead_sender_is_given_up_on(
    settings: Settings, engine: AsyncEngine, owner_engine: AsyncEngine
) -> None:
    async with receiving(settings) as receiver, allowing_private(settings) as people:
        owner, workspace, _ = await hooked(people, receiver.url)
        await cancelled_task(people.client, owner, workspace)
        store = PgWebhookDeliveries(engine)
        one_attempt = WebhookSettings(allow_private=True, max_attempts=1, lease_s=1)
        claimed = await store.claim(1000, one_attempt.lease_s, one_attempt.max_attempts)
        assert any(d.workspace_id == workspace for d in claimed)
        await asyncio.sleep(one_attempt.lease_s)
        await run_until_settled(delivering(engine, one_attempt), owner_engine, workspace)
    (row,) = await deliveries(owner_engine, workspace)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "stopped answering" in row.last_error
    assert receiver.received == []


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
async def test_each_final_state_is_recorded_once(
    settings: Settings, owner_engine: AsyncEngine, status: str
) -> None:
    async with allowing_private(settings) as people:
        owner, workspace, _ = await hooked(people, "http://127.0.0.1:9/hook")
        tasks = f"/v1/workspaces/{workspace}/tasks"
        task = (await people.client.post(tasks, json=SUMMARY, headers=owner.headers)).json()["id"]
    async with owner_engine.begin() as conn:
        for step in ("running", "queued", "running", status):
            await conn.execute(
                sa.text("update tasks set status = :s where workspace_id = :w and id = :t"),
                {"s": step, "w": workspace, "t": task},
            )
        # A final task touched again (e.g. its lease columns) records nothing more.
        await conn.execute(
            sa.text("update tasks set updated_at = now(), status = status where id = :t"),
            {"t": task},
        )
    rows = await deliveries(owner_engine, workspace)
    assert [(str(r.task_id), r.status) for r in rows] == [(task, "pending")]
    async with owner_engine.connect() as conn:
        kind = await conn.scalar(
            sa.text("select payload->>'type' from webhook_deliveries where id = :d"),
            {"d": rows[0].id},
        )
    assert kind == f"task.{status}"
