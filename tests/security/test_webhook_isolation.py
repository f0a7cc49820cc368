"""Webhooks across tenants and networks (adversarial).

- Workspace B's receiver never gets A's events, and B's owner can neither
  read nor change nor delete A's webhook (the API answers 404), nor, as
  keel_app in A's tenant context, see or touch its rows (row-level security:
  owners only, so A's own admins and members cannot read the secret either).
- At send time, a URL that resolves to loopback, a private network, link-local
  metadata or the unspecified address is refused at connect, in every
  spelling the resolver accepts, even though the receiver is listening there.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.uow import enter_tenant
from adapters.webhooks.sender import StandardWebhookSender
from application.webhooks import WebhookSettings
from domain.entities import Caller
from domain.errors import WebhookDeliveryError
from domain.webhooks import Delivery, new_signing_secret
from entrypoints.settings import Settings
from tests.conftest import People
from tests.integration.test_webhooks import (
    allowing_private,
    cancelled_task,
    deliveries,
    delivering,
    hooked,
    run_until_settled,
)
from tests.receiver import receiving

pytestmark = pytest.mark.slow  # deliveries and their retries: `pytest -m slow`


async def test_b_never_receives_a_s_events_and_cannot_touch_a_s_webhook(
    settings: Settings, engine: AsyncEngine, owner_engine: AsyncEngine
) -> None:
    async with (
        receiving(settings) as receiver_a,
        receiving(settings) as receiver_b,
        allowing_private(settings) as people,
    ):
        owner_a, workspace_a, secret_a = await hooked(people, receiver_a.url)
        owner_b, workspace_b, secret_b = await hooked(people, receiver_b.url)
        tasks_a = [await cancelled_task(people.client, owner_a, workspace_a) for _ in range(3)]
        await run_until_settled(delivering(engine), owner_engine, workspace_a)
        assert receiver_b.received == []
        # At least once: a delivery whose answer came too late is sent again, same id.
        assert {p["data"]["task_id"] for p in receiver_a.verified(secret_a)} == set(tasks_a)

        url_a = f"/v1/workspaces/{workspace_a}/webhook"
        http = people.client
        for method, params, body in (
            ("GET", None, None),
            ("PUT", None, {"url": receiver_b.url}),
            ("PUT", {"rotate": "true"}, {"url": receiver_a.url}),
            ("DELETE", None, None),
        ):
            answer = await http.request(
                method, url_a, params=params, json=body, headers=owner_b.headers
            )
            assert answer.status_code == 404, (method, answer.text)
            assert "secret" not in answer.text
        for role in ("admin", "member", "viewer"):
            insider = await people.join(workspace_a, owner_a, role)
            for method, body in (("GET", None), ("PUT", {"url": receiver_b.url}), ("DELETE", None)):
                answer = await http.request(method, url_a, json=body, headers=insider.headers)
                assert answer.status_code == 403, (role, method, answer.text)
        kept = await http.get(url_a, headers=owner_a.headers)
        assert kept.json()["url"] == receiver_a.url

        # A's next event still goes to A, signed with A's unchanged secret.
        late = await cancelled_task(http, owner_a, workspace_a)
        await run_until_settled(delivering(engine), owner_engine, workspace_a)
        assert receiver_a.verified(secret_a)[-1]["data"]["task_id"] == late
        assert receiver_b.received == []
        task_b = await cancelled_task(http, owner_b, workspace_b)
        await run_until_settled(delivering(engine), owner_engine, workspace_b)
        assert [p["data"]["task_id"] for p in receiver_b.verified(secret_b)] == [task_b]
        assert {p["data"]["task_id"] for p in receiver_a.verified(secret_a)} == {*tasks_a, late}
        assert len({r.headers["webhook-id"] for r in receiver_a.received}) == 4


DENIED = object()


@pytest.mark.parametrize("who", ["other owner", "admin", "member", "viewer", "nobody"])
async def test_only_a_s_owners_see_or_change_its_webhook_rows(
    settings: Settings, engine: AsyncEngine, people: People, who: str
) -> None:
    async with allowing_private(settings) as api:
        owner, workspace, _ = await hooked(api, "http://127.0.0.1:9/hook")
        await cancelled_task(api.client, owner, workspace)
        if who == "other owner":
            user = await api.new()
            await api.workspace(user)
        elif who == "nobody":
            user = await api.new()
        else:
            user = await api.join(workspace, owner, who)
    # Each reads or changes nothing, or is refused outright (keel_app may only
    # read deliveries: the database writes them).
    probes = [
        ("select count(*) from workspace_webhooks", 0),
        ("select count(*) from webhook_deliveries", 0),
        (
            "with c as (update workspace_webhooks set url = 'http://evil.test/'"
            " returning 1) select count(*) from c",
            0,
        ),
        (
            "with c as (update workspace_webhooks set secret = 'whsec_bWluZQ=='"
            " returning 1) select count(*) from c",
            0,
        ),
        ("with c as (delete from workspace_webhooks returning 1) select count(*) from c", 0),
        (
            "insert into workspace_webhooks (workspace_id, url, secret)"
            " values (:w, 'http://evil.test/', 'whsec_bWluZQ==')",
            DENIED,
        ),
        ("delete from webhook_deliveries", DENIED),
        ("update webhook_deliveries set status = 'delivered'", DENIED),
        (
            "insert into webhook_deliveries (workspace_id, id, task_id, payload)"
            " select :w, gen_random_uuid(), id, '{}' from tasks limit 1",
            DENIED,
        ),
    ]
    for sql, expected in probes:
        async with engine.connect() as conn, conn.begin():
            await enter_tenant(conn, Caller(user.id, workspace))
            if expected is DENIED:
                with pytest.raises(DBAPIError, match=r"row-level security|permission denied"):
                    await conn.execute(sa.text(sql), {"w": workspace})
            else:
                assert await conn.scalar(sa.text(sql)) == expected, (who, sql)
    async with engine.connect() as conn, conn.begin():
        await enter_tenant(conn, Caller(owner.id, workspace))
        assert await conn.scalar(sa.text("select count(*) from workspace_webhooks")) == 1
        assert await conn.scalar(sa.text("select count(*) from webhook_deliveries")) == 1


# Where the test receiver listens (127.0.0.1), spelled as an attacker would,
# and the other address classes a webhook may never reach.
LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "localhost",
    "2130706433",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "0x7f000001",
    "127.1",
    "127.000.000.001",
    "[::ffff:127.0.0.1]",
    "0.0.0.0",  # noqa: S104 - the attack under test: it reaches local listeners
    "0",
]
NEVER = ["[::1]", "10.0.0.1", "192.168.1.1", "169.254.169.254", "[fe80::1]", "100.64.0.1"]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + NEVER)
async def test_the_sender_refuses_off_internet_targets_at_connect(
    settings: Settings, host: str
) -> None:
    async with receiving(settings) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        delivery = Delivery(
            uuid.uuid4(), uuid.uuid4(), 1, f"http://{host}:{port}/hook", new_signing_secret(), "{}"
        )
        sender = StandardWebhookSender(allow_private=False, timeout_s=2)
        with pytest.raises(WebhookDeliveryError, match="resolves to a refused address"):
            await sender.send(delivery)
        await sender.aclose()
        assert receiver.received == []
        if host in LOOPBACK_SPELLINGS:
            # The same request with private targets allowed does reach the receiver.
            allowed = StandardWebhookSender(allow_private=True, timeout_s=2)
            await allowed.send(delivery)
            await allowed.aclose()
            assert len(receiver.received) == 1


async def test_a_url_that_turned_private_after_it_was_configured_is_not_sent_to(
    settings: Settings, engine: AsyncEngine, owner_engine: AsyncEngine
) -> None:
    """DNS changes: the check when configuring is not enough on its own."""
    async with receiving(settings) as receiver, allowing_private(settings) as people:
        owner, workspace, _ = await hooked(people, "https://93.184.215.14/hook")
        rebound = receiver.url.replace("127.0.0.1", "localhost")
        async with owner_engine.begin() as conn:  # what the name now resolves to
            await conn.execute(
                sa.text("update workspace_webhooks set url = :u where workspace_id = :w"),
                {"u": rebound, "w": workspace},
            )
        await cancelled_task(people.client, owner, workspace)
        strict_settings = WebhookSettings(allow_private=False, max_attempts=2, lease_s=1)
        await run_until_settled(delivering(engine, strict_settings), owner_engine, workspace)
    (row,) = await deliveries(owner_engine, workspace)
    assert (row.status, row.attempts) == ("failed", 2)
    assert "refused address" in row.last_error
    assert receiver.received == []
