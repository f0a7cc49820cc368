"""Webhooks over the in-memory fakes: who may configure one, which URLs it
may have, and how deliveries are retried and given up on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

import pytest
from standardwebhooks import Webhook as Verifier

from application.deliver_webhooks import DeliverWebhooks
from application.webhooks import ConfigureWebhook, DeleteWebhook, GetWebhook, WebhookSettings
from domain.entities import Caller, Membership, Role, User, Workspace
from domain.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from domain.retry import Backoff
from domain.webhooks import Delivery, check_url, new_signing_secret, refusal
from tests.fakes import (
    InMemoryUnitOfWorkFactory,
    InMemoryWebhookDeliveries,
    ScriptedSender,
    StaticResolver,
)

PUBLIC = "https://hooks.example.test/keel"
RESOLVER = StaticResolver(
    {
        "hooks.example.test": ["93.184.215.14"],
        "localhost": ["127.0.0.1", "::1"],
        "internal.example.test": ["10.0.0.7"],
        "mixed.example.test": ["93.184.215.14", "169.254.169.254"],
    }
)
SETTINGS = WebhookSettings(max_attempts=3, backoff=Backoff(10, 40))


def _workspace(factory: InMemoryUnitOfWorkFactory, *roles: Role) -> tuple[UUID, list[UUID]]:
    """A workspace with an owner and one user per role in `roles`."""
    workspace_id, people = uuid.uuid4(), []
    for role in (Role.OWNER, *roles):
        user_id = uuid.uuid4()
        factory.committed.users[user_id] = User(user_id, None)
        factory.committed.memberships[workspace_id, user_id] = Membership(
            workspace_id, user_id, role
        )
        people.append(user_id)
    factory.committed.workspaces[workspace_id] = Workspace(workspace_id, "W", people[0])
    return workspace_id, people


def _configure(
    factory: InMemoryUnitOfWorkFactory, who: UUID, workspace_id: UUID, **settings: bool
) -> ConfigureWebhook:
    return ConfigureWebhook(
        factory(Caller(who, workspace_id)), RESOLVER, WebhookSettings(**settings)
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.test/",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "gopher://hooks.example.test:70/",
        "https://",
        "https:///path",
        "https://user:pass@hooks.example.test/",
        "https://user@hooks.example.test/",
        "https://hooks.example.test:99999/",
        "https://hooks.example.test/a b",
        "https://hooks.example.test/\r\nX-Injected: 1",
        "hooks.example.test/keel",
        "",
        "https://hooks.example.test/" + "a" * 2048,
    ],
)
def test_a_webhook_url_is_http_or_https_with_a_host_and_nothing_else(url: str) -> None:
    with pytest.raises(InvalidInputError):
        check_url(url)


def test_a_good_url_names_its_target() -> None:
    assert (check_url(PUBLIC).host, check_url(PUBLIC).port) == ("hooks.example.test", 443)
    assert check_url("http://hooks.example.test:8080/x?y=1").port == 8080


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "0.0.0.0",  # noqa: S104 - the attack under test
        "::",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd12:3456::1",
        "100.64.0.1",
        "224.0.0.1",
        "ff02::1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
    ],
)
def test_addresses_outside_the_public_internet_are_refused(address: str) -> None:
    assert refusal(address) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(address) is None


async def test_the_owner_creates_a_webhook_and_sees_its_secret_once() -> None:
    factory = InMemoryUnitOfWorkFactory()
    workspace_id, (owner,) = _workspace(factory)
    created = await _configure(factory, owner, workspace_id).execute(PUBLIC, rotate=False)
    assert created.created
    assert created.secret is not None
    assert created.secret.startswith("whsec_")
    changed = await _configure(factory, owner, workspace_id).execute(PUBLIC + "/v2", rotate=False)
    assert (changed.created, changed.secret, changed.webhook.url) == (False, None, PUBLIC + "/v2")
    assert factory.committed.webhooks[workspace_id][1] == created.secret
    rotated = await _configure(factory, owner, workspace_id).execute(PUBLIC, rotate=True)
    assert rotated.secret not in (None, created.secret)
    assert factory.committed.webhooks[workspace_id][1] == rotated.secret
    read = await GetWebhook(factory(Caller(owner, workspace_id))).execute()
    assert read.url == PUBLIC
    assert not hasattr(read, "secret")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER])
async def test_only_owners_read_change_or_delete_the_webhook(role: Role) -> None:
    factory = InMemoryUnitOfWorkFactory()
    workspace_id, (owner, other) = _workspace(factory, role)
    await _configure(factory, owner, workspace_id).execute(PUBLIC, rotate=False)
    caller = Caller(other, workspace_id)
    with pytest.raises(PermissionDeniedError):
        await ConfigureWebhook(factory(caller), RESOLVER, SETTINGS).execute(PUBLIC, rotate=True)
    with pytest.raises(PermissionDeniedError):
        await GetWebhook(factory(caller)).execute()
    with pytest.raises(PermissionDeniedError):
        await DeleteWebhook(factory(caller)).execute()
    assert factory.committed.webhooks[workspace_id][0].url == PUBLIC


async def test_a_stranger_is_told_the_workspace_does_not_exist() -> None:
    factory = InMemoryUnitOfWorkFactory()
    workspace_id, _ = _workspace(factory)
    stranger = Caller(uuid.uuid4(), workspace_id)
    for use_case in (
        ConfigureWebhook(factory(stranger), RESOLVER, SETTINGS).execute(PUBLIC, rotate=False),
        GetWebhook(factory(stranger)).execute(),
        DeleteWebhook(factory(stranger)).execute(),
    ):
        with pytest.raises(NotFoundError, match="workspace not found"):
            await use_case
    assert workspace_id not in factory.committed.webhooks


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/hook",
        "http://internal.example.test/hook",
        "https://mixed.example.test/hook",
        "http://127.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://nowhere.example.test/hook",
    ],
)
async def test_urls_that_resolve_off_the_public_internet_are_refused(url: str) -> None:
    factory = InMemoryUnitOfWorkFactory()
    workspace_id, (owner,) = _workspace(factory)
    resolver = StaticResolver({**RESOLVER.answers, "127.0.0.1": ["127.0.0.1"], "::1": ["::1"]})
    resolver.answers["169.254.169.254"] = ["169.254.169.254"]
    use_case = ConfigureWebhook(factory(Caller(owner, workspace_id)), resolver, WebhookSettings())
    with pytest.raises(InvalidInputError):
        await use_case.execute(url, rotate=False)
    assert workspace_id not in factory.committed.webhooks


async def test_private_targets_are_allowed_when_the_setting_says_so() -> None:
    factory = InMemoryUnitOfWorkFactory()
    workspace_id, (owner,) = _workspace(factory)
    use_case = _configure(factory, owner, workspace_id, allow_private=True)
    assert (await use_case.execute("http://localhost:8080/hook", rotate=False)).created


async def test_deleting_the_webhook() -> None:
    factory = InMemoryUnitOfWorkFactory()
    workspace_id, (owner,) = _workspace(factory)
    await _configure(factory, owner, workspace_id).execute(PUBLIC, rotate=False)
    await DeleteWebhook(factory(Caller(owner, workspace_id))).execute()
    assert workspace_id not in factory.committed.webhooks
    with pytest.raises(NotFoundError):
        await DeleteWebhook(factory(Caller(owner, workspace_id))).execute()
    with pytest.raises(NotFoundError):
        await GetWebhook(factory(Caller(owner, workspace_id))).execute()


def _delivery() -> Delivery:
    return Delivery(uuid.uuid4(), uuid.uuid4(), 0, PUBLIC, new_signing_secret(), '{"type": "x"}')


async def test_a_delivery_is_sent_once_and_recorded() -> None:
    deliveries, sender = InMemoryWebhookDeliveries(), ScriptedSender()
    row = deliveries.add(_delivery())
    deliver = DeliverWebhooks(deliveries, sender, SETTINGS)
    assert await deliver.execute() == 1
    assert await deliver.execute() == 0
    assert (row.status, row.attempts, len(sender.sent)) == ("delivered", 1, 1)


async def test_failed_attempts_are_retried_with_the_task_backoff() -> None:
    deliveries, sender = InMemoryWebhookDeliveries(), ScriptedSender("HTTP 500", "HTTP 500")
    row = deliveries.add(_delivery())
    deliver = DeliverWebhooks(deliveries, sender, SETTINGS)
    delays = []
    for _ in range(3):
        await deliver.execute()
        delays.append(row.available_in_ms)
    assert (row.status, row.attempts) == ("delivered", 3)
    assert [d.attempt for d in sender.sent] == [1, 2, 3]
    assert 0 <= delays[0] <= 10
    assert 0 <= delays[1] <= 20


async def test_a_delivery_is_given_up_after_the_bound_with_its_last_error() -> None:
    deliveries = InMemoryWebhookDeliveries()
    sender = ScriptedSender("refused 1", "refused 2", "refused 3", "never sent")
    row = deliveries.add(_delivery())
    deliver = DeliverWebhooks(deliveries, sender, SETTINGS)
    for _ in range(5):
        await deliver.execute()
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "refused 3")
    assert len(sender.sent) == SETTINGS.max_attempts


async def test_an_attempt_whose_lease_ran_out_is_sent_again_and_its_late_outcome_ignored() -> None:
    deliveries, sender = InMemoryWebhookDeliveries(), ScriptedSender()
    row = deliveries.add(_delivery())
    (abandoned,) = await deliveries.claim(10, 30, SETTINGS.max_attempts)  # a worker that died
    deliveries.expire_leases()
    await DeliverWebhooks(deliveries, sender, SETTINGS).execute()
    assert (row.status, row.attempts, [d.attempt for d in sender.sent]) == ("delivered", 2, [2])
    assert not await deliveries.give_up(abandoned, "too late")
    assert row.status == "delivered"


def test_a_new_secret_signs_what_standard_webhooks_verifies() -> None:
    secret = new_signing_secret()
    assert secret != new_signing_secret()
    signer = Verifier(secret)
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign("msg_1", now, b"{}"),
    }
    assert Verifier(secret).verify(b"{}", headers) == {}
