"""Adversarial tests for event streams and stream tickets: no stream of
another tenant, a ticket opens one stream once, only the one it names."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import httpx
import msgspec
from redis.asyncio import Redis

from entrypoints.settings import Settings
from tests.conftest import People, Person
from tests.live import live, messages, stream_status

NEW_TASK = {"kind": "summarize", "input": {"text": "isolation"}}


async def _task(http: httpx.AsyncClient, person: Person, workspace: uuid.UUID) -> str:
    response = await http.post(
        f"/v1/workspaces/{workspace}/tasks", json=NEW_TASK, headers=person.headers
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def _ticket(
    http: httpx.AsyncClient, person: Person, workspace: uuid.UUID, task: str | None = None
) -> httpx.Response:
    body = {"task_id": task} if task else None
    return await http.post(
        f"/v1/workspaces/{workspace}/stream-tickets", json=body, headers=person.headers
    )


async def test_no_stream_of_another_workspace(settings: Settings, people: People) -> None:
    alice, mallory = await people.new(), await people.new()
    theirs, mine = await people.workspace(alice), await people.workspace(mallory)
    async with live(settings) as http:
        task = await _task(http, alice, theirs)
        for url in (
            f"/v1/workspaces/{theirs}/events",
            f"/v1/workspaces/{theirs}/tasks/{task}/events",
            f"/v1/workspaces/{mine}/tasks/{task}/events",  # her task through my workspace
            f"/v1/workspaces/{uuid.uuid4()}/events",
        ):
            assert await stream_status(http, url, mallory.headers) == 404, url
        assert (await _ticket(http, mallory, theirs)).status_code == 404
        assert (await _ticket(http, mallory, theirs, task)).status_code == 404
        assert (await _ticket(http, mallory, mine, task)).status_code == 404
        assert await stream_status(http, f"/v1/workspaces/{theirs}/events", alice.headers) == 200


async def test_a_ticket_opens_one_stream_once(settings: Settings, people: People) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    url = f"/v1/workspaces/{workspace}/events"
    async with live(settings) as http:
        issued = await _ticket(http, alice, workspace)
        assert issued.status_code == 201, issued.text
        ticket = issued.json()["ticket"]
        assert issued.json()["expires_at"]
        first, second = await asyncio.gather(
            stream_status(http, f"{url}?ticket={ticket}"),
            stream_status(http, f"{url}?ticket={ticket}"),
        )
        assert sorted([first, second]) == [200, 401]
        assert await stream_status(http, f"{url}?ticket={ticket}") == 401
        assert await stream_status(http, f"{url}?ticket={'x' * 43}") == 401
        assert await stream_status(http, f"{url}?ticket=") == 401


async def test_an_expired_ticket_opens_nothing(
    settings: Settings, people: People, redis: Redis
) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    async with live(settings) as http:
        ticket = (await _ticket(http, alice, workspace)).json()["ticket"]
        key = f"keel:ticket:{hashlib.sha256(ticket.encode()).hexdigest()}"
        assert 0 < await redis.pttl(key) <= 60_000, "a ticket lives at most 60 s"
        await redis.pexpire(key, 1)
        await asyncio.sleep(0.05)
        assert (
            await stream_status(http, f"/v1/workspaces/{workspace}/events?ticket={ticket}") == 401
        )


async def test_a_ticket_opens_only_what_it_names(settings: Settings, people: People) -> None:
    alice = await people.new()
    workspace, other = await people.workspace(alice), await people.workspace(alice, "Other")
    async with live(settings) as http:
        task, sibling = await _task(http, alice, workspace), await _task(http, alice, workspace)

        async def ticket(task_id: str | None = None, where: uuid.UUID = workspace) -> str:
            response = await _ticket(http, alice, where, task_id)
            assert response.status_code == 201, response.text
            return str(response.json()["ticket"])

        base = f"/v1/workspaces/{workspace}"
        for url in (f"{base}/tasks/{sibling}/events", f"{base}/events"):
            assert await stream_status(http, f"{url}?ticket={await ticket(task)}") == 404, url
        assert (
            await stream_status(http, f"/v1/workspaces/{other}/events?ticket={await ticket()}")
            == 404
        )
        own = f"{base}/tasks/{task}/events?ticket={await ticket(task)}"
        assert await stream_status(http, own) == 200
        # Not a credential anywhere but on event streams.
        listing = await http.get(f"{base}/tasks?ticket={await ticket()}")
        assert listing.status_code == 401


async def test_a_token_on_the_request_never_spends_a_ticket(
    settings: Settings, people: People
) -> None:
    alice, mallory = await people.new(), await people.new()
    workspace = await people.workspace(alice)
    async with live(settings) as http:
        ticket = (await _ticket(http, alice, workspace)).json()["ticket"]
        url = f"/v1/workspaces/{workspace}/events?ticket={ticket}"
        assert await stream_status(http, url, mallory.headers) == 404  # mallory's token decides
        assert await stream_status(http, url) == 200  # the ticket is still unspent


async def test_a_removed_member_cannot_use_a_ticket_issued_before(
    settings: Settings, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    member = await people.join(workspace, owner, "viewer")
    async with live(settings) as http:
        ticket = (await _ticket(http, member, workspace)).json()["ticket"]
        removed = await http.delete(
            f"/v1/workspaces/{workspace}/members/{member.id}", headers=owner.headers
        )
        assert removed.status_code == 204
        assert (
            await stream_status(http, f"/v1/workspaces/{workspace}/events?ticket={ticket}") == 404
        )


async def test_a_member_removed_while_streaming_loses_the_stream(
    settings: Settings, people: People
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner)
    changed = msgspec.structs.replace(settings, sse_heartbeat_s=0.2)
    async with live(changed) as http:
        task = await _task(http, owner, workspace)
        base = f"/v1/workspaces/{workspace}"
        for url in (f"{base}/events", f"{base}/tasks/{task}/events"):
            viewer = await people.join(workspace, owner, "viewer")
            async with http.stream("GET", url, headers=viewer.headers) as response:
                assert response.status_code == 200
                removed = await http.delete(f"{base}/members/{viewer.id}", headers=owner.headers)
                assert removed.status_code == 204
                comments = await asyncio.wait_for(_until_closed(response), 5)
            assert any(comment.startswith("closed: ") for comment in comments), comments
            assert await stream_status(http, url, viewer.headers) == 404


async def _until_closed(response: httpx.Response) -> list[str]:
    comments: list[str] = []
    async for message in messages(response):
        comments += message.comments
    return comments


async def test_two_tickets_in_one_url_spend_neither(settings: Settings, people: People) -> None:
    alice = await people.new()
    workspace = await people.workspace(alice)
    url = f"/v1/workspaces/{workspace}/events"
    async with live(settings) as http:
        first, second = [(await _ticket(http, alice, workspace)).json()["ticket"] for _ in "ab"]
        assert await stream_status(http, f"{url}?ticket={first}&ticket={second}") == 401
        assert await stream_status(http, f"{url}?ticket={first}") == 200, "the first is unspent"
        assert await stream_status(http, f"{url}?ticket={second}") == 200, "and the second"
