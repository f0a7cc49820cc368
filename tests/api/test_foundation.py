"""Foundation documents over HTTP: CRUD, ETags, If-Match, filters, history."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import People, Person

BRAND = {"kind": "brand", "title": "Voice", "content": {"tone": "warm", "n": 1}, "tags": ["core"]}


async def _setup(people: People) -> tuple[Person, uuid.UUID, str]:
    owner = await people.new()
    workspace = await people.workspace(owner)
    return owner, workspace, f"/v1/workspaces/{workspace}/foundation"


async def test_create_read_update_delete_with_etags(
    client: httpx.AsyncClient, people: People, owner_engine: AsyncEngine
) -> None:
    owner, workspace, url = await _setup(people)
    created = await client.post(url, json=BRAND, headers=owner.headers)
    assert created.status_code == 201
    assert created.headers["etag"] == '"1"'
    document = created.json()
    assert (document["version"], document["workspace_id"]) == (1, str(workspace))
    assert document["created_by"] == document["updated_by"] == str(owner.id)
    one = f"{url}/{document['id']}"

    read = await client.get(one, headers=owner.headers)
    assert (read.status_code, read.headers["etag"], read.json()) == (200, '"1"', document)
    unchanged = await client.get(one, headers={**owner.headers, "If-None-Match": '"1"'})
    assert unchanged.status_code == 304

    patched = await client.patch(
        one, json={"title": "Voice 2"}, headers={**owner.headers, "If-Match": '"1"'}
    )
    assert patched.status_code == 200
    assert patched.headers["etag"] == '"2"'
    assert patched.json()["title"] == "Voice 2"
    assert patched.json()["content"] == BRAND["content"]
    reread = await client.get(one, headers=owner.headers)
    assert (reread.json()["title"], reread.json()["version"]) == ("Voice 2", 2)

    stale = await client.delete(one, headers={**owner.headers, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert (
        await client.delete(one, headers={**owner.headers, "If-Match": '"2"'})
    ).status_code == 204
    assert (await client.get(one, headers=owner.headers)).status_code == 404

    async with owner_engine.connect() as conn:
        history = (
            await conn.execute(
                sa.text(
                    "select version, action, changed_by, changes from foundation_revisions"
                    " where document_id = :d order by version"
                ),
                {"d": document["id"]},
            )
        ).all()
    assert [(r.version, r.action) for r in history] == [
        (1, "created"),
        (2, "updated"),
        (3, "deleted"),
    ]
    assert {r.changed_by for r in history} == {owner.id}
    assert history[1].changes == {"title": "Voice 2"}


async def test_two_concurrent_patches_with_the_same_etag_one_wins(
    client: httpx.AsyncClient, people: People
) -> None:
    owner, _, url = await _setup(people)
    document = (await client.post(url, json=BRAND, headers=owner.headers)).json()
    one = f"{url}/{document['id']}"
    for round_ in range(5):
        etag = f'"{round_ + 1}"'
        responses = await asyncio.gather(
            *(
                client.patch(
                    one, json={"title": f"t{i}"}, headers={**owner.headers, "If-Match": etag}
                )
                for i in range(2)
            )
        )
        assert sorted(r.status_code for r in responses) == [200, 412]
    assert (await client.get(one, headers=owner.headers)).json()["version"] == 6


@pytest.mark.parametrize(
    ("if_match", "status"),
    [('W/"1"', 412), ('"9"', 412), ("1", 400), ('"1", "2"', 400), ("*", 200)],
)
async def test_if_match_forms(
    client: httpx.AsyncClient, people: People, if_match: str, status: int
) -> None:
    owner, _, url = await _setup(people)
    document = (await client.post(url, json=BRAND, headers=owner.headers)).json()
    response = await client.patch(
        f"{url}/{document['id']}",
        json={"tags": ["x"]},
        headers={**owner.headers, "If-Match": if_match},
    )
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    "body",
    [
        {**BRAND, "content": ["not", "an", "object"]},
        {**BRAND, "content": {"big": "x" * (256 * 1024)}},
        {**BRAND, "kind": "Not A Kind"},
        {**BRAND, "title": " "},
        {**BRAND, "tags": ["x" * 65]},
        {**BRAND, "tags": [f"t{i}" for i in range(51)]},
        {**BRAND, "version": 7},
        {**BRAND, "workspace_id": str(uuid.uuid4())},
    ],
    ids=["array", "too big", "kind", "title", "long tag", "many tags", "version", "workspace"],
)
async def test_invalid_documents_are_refused(
    client: httpx.AsyncClient, people: People, body: dict[str, object]
) -> None:
    owner, _, url = await _setup(people)
    response = await client.post(url, json=body, headers=owner.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_empty_patch_is_refused(client: httpx.AsyncClient, people: People) -> None:
    owner, _, url = await _setup(people)
    document = (await client.post(url, json=BRAND, headers=owner.headers)).json()
    response = await client.patch(f"{url}/{document['id']}", json={}, headers=owner.headers)
    assert response.status_code == 400


async def test_filters_and_pages(client: httpx.AsyncClient, people: People) -> None:
    owner, _, url = await _setup(people)
    made = []
    for i in range(6):
        body = {
            "kind": "audience" if i % 2 else "brand",
            "title": f"d{i}",
            "content": {"segment": "smb" if i < 3 else "enterprise", "i": i},
            "tags": ["even"] if i % 2 == 0 else ["odd"],
        }
        made.append((await client.post(url, json=body, headers=owner.headers)).json())

    async def titles(**params: str) -> list[str]:
        page = await client.get(url, params=params, headers=owner.headers)
        assert page.status_code == 200, page.text
        return [item["title"] for item in page.json()["items"]]

    assert await titles(kind="audience") == ["d1", "d3", "d5"]
    assert await titles(tag="even") == ["d0", "d2", "d4"]
    assert await titles(contains=json.dumps({"segment": "enterprise"})) == ["d3", "d4", "d5"]
    assert await titles(kind="brand", contains=json.dumps({"segment": "smb"})) == ["d0", "d2"]
    first = (await client.get(url, params={"limit": 4}, headers=owner.headers)).json()
    second = (
        await client.get(
            url, params={"limit": 4, "cursor": first["next_cursor"]}, headers=owner.headers
        )
    ).json()
    assert [d["id"] for d in first["items"] + second["items"]] == [d["id"] for d in made]
    assert second["next_cursor"] is None
    for params in ({"contains": "[1]"}, {"tag": "a\x00b"}, {"contains": '{"a": "\\u0000"}'}):
        bad = await client.get(url, params=params, headers=owner.headers)
        assert bad.status_code == 400, (params, bad.text)


async def test_viewers_read_but_do_not_write(client: httpx.AsyncClient, people: People) -> None:
    owner, workspace, url = await _setup(people)
    viewer = await people.join(workspace, owner, "viewer")
    document = (await client.post(url, json=BRAND, headers=owner.headers)).json()
    assert (await client.get(f"{url}/{document['id']}", headers=viewer.headers)).status_code == 200
    assert (await client.post(url, json=BRAND, headers=viewer.headers)).status_code == 403
    patched = await client.patch(
        f"{url}/{document['id']}", json={"title": "x"}, headers=viewer.headers
    )
    assert patched.status_code == 403
