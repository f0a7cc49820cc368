"""A workspace's webhook over HTTP: the secret shown only when it is new,
problem documents for bad input, and the URL rule (adversarial) when the
webhook is configured."""

from __future__ import annotations

import httpx
import pytest
from standardwebhooks import Webhook as Verifier

from tests.conftest import People

PUBLIC = "https://93.184.215.14/keel"


async def test_put_get_rotate_delete(client: httpx.AsyncClient, people: People) -> None:
    owner = await people.new()
    url = f"/v1/workspaces/{await people.workspace(owner)}/webhook"
    assert (await client.get(url, headers=owner.headers)).status_code == 404

    created = await client.put(url, json={"url": PUBLIC}, headers=owner.headers)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    Verifier(secret)  # a secret the reference library accepts

    changed = await client.put(url, json={"url": PUBLIC + "/v2"}, headers=owner.headers)
    assert changed.status_code == 200
    assert "secret" not in changed.json()
    read = await client.get(url, headers=owner.headers)
    assert read.status_code == 200
    assert set(read.json()) == {"url", "created_at", "updated_at"}
    assert read.json()["url"] == PUBLIC + "/v2"

    rotated = await client.put(
        url, params={"rotate": "true"}, json={"url": PUBLIC}, headers=owner.headers
    )
    assert rotated.status_code == 200
    assert rotated.json()["secret"] not in (None, secret)

    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert (await client.get(url, headers=owner.headers)).status_code == 404
    assert (await client.delete(url, headers=owner.headers)).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": 5},
        {"url": None},
        {"url": PUBLIC, "secret": "whsec_bWluZQ=="},
        {"url": PUBLIC, "workspace_id": "00000000-0000-0000-0000-000000000000"},
        {"url": "ftp://93.184.215.14/"},
        {"url": "javascript:alert(1)"},
        {"url": "file:///etc/passwd"},
        {"url": "https://user:pw@93.184.215.14/"},
        {"url": "https://93.184.215.14/" + "a" * 2100},
        {"url": "https://93.184.215.14:70000/"},
        {"url": "https://no-such-host.invalid/"},
    ],
)
async def test_bad_input_is_a_problem_document(
    client: httpx.AsyncClient, people: People, body: dict[str, object]
) -> None:
    owner = await people.new()
    url = f"/v1/workspaces/{await people.workspace(owner)}/webhook"
    response = await client.put(url, json=body, headers=owner.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 400
    assert (await client.get(url, headers=owner.headers)).status_code == 404


# Each names loopback, a private network, link-local metadata, the unspecified
# address, multicast or shared space, in spellings a resolver accepts.
PRIVATE_TARGETS = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:6379/",
    "http://[::1]/hook",
    "http://localhost/hook",
    "http://2130706433/hook",
    "http://0177.0.0.1/hook",
    "http://0x7f.0.0.1/hook",
    "http://0x7f000001/hook",
    "http://127.1/hook",
    "http://0.0.0.0/hook",
    "http://0/hook",
    "http://[::]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://10.0.0.1/hook",
    "http://172.16.0.1/hook",
    "http://192.168.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://224.0.0.1/hook",
    "http://100.64.0.1/hook",
    "http://240.0.0.1/hook",
]


@pytest.mark.parametrize("target", PRIVATE_TARGETS)
async def test_a_webhook_cannot_point_off_the_public_internet(
    client: httpx.AsyncClient, people: People, target: str
) -> None:
    owner = await people.new()
    url = f"/v1/workspaces/{await people.workspace(owner)}/webhook"
    response = await client.put(url, json={"url": target}, headers=owner.headers)
    assert response.status_code == 400, response.text
    assert "public address" in response.json()["detail"]
    assert (await client.get(url, headers=owner.headers)).status_code == 404
