"""The OpenAPI document is true: it validates, and a client generated from it
by openapi-python-client drives the main flows against the real API, with
every status the API answered documented (the client raises otherwise)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from entrypoints.http.auth import issue_token
from tests.conftest import AUDIENCE, JWT_SECRET, People

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def keel_client(
    document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The package openapi-python-client generates, imported as `keel_client`."""
    root = tmp_path_factory.mktemp("generated")
    spec, config = root / "openapi.json", root / "config.yaml"
    spec.write_text(httpx.Response(200, json=document).text)
    config.write_text("post_hooks: []\n")
    command = [BIN / "openapi-python-client", "generate", "--meta", "none", "--path", spec]
    generated = subprocess.run(
        [*command, "--config", config],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # A warning means part of the API was left out of the client.
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("keel_client")
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name.startswith("keel_client")]:
            del sys.modules[name]


def _api(keel_client: ModuleType, name: str) -> Any:
    return importlib.import_module(f"keel_client.api.{name}")


def _as(keel_client: ModuleType, client: httpx.AsyncClient, user: uuid.UUID | None) -> Any:
    """A generated client speaking to the test's app, as `user` (None: no token)."""
    # The test client's own transport: it runs the app where its lifespan ran.
    transport = client._transport
    options: dict[str, Any] = {"base_url": "http://keel.test", "raise_on_unexpected_status": True}
    options["httpx_args"] = {"transport": transport}
    if user is None:
        return keel_client.Client(**options)
    return keel_client.AuthenticatedClient(
        token=issue_token(JWT_SECRET, AUDIENCE, user, f"{user.hex[:8]}@example.test"), **options
    )


async def test_the_document_validates(document: dict[str, Any]) -> None:
    validate(document)


async def test_routes_document_their_real_media_types_and_security(
    document: dict[str, Any],
) -> None:
    paths = document["paths"]
    for path in (
        "/v1/workspaces/{workspace_id}/events",
        "/v1/workspaces/{workspace_id}/tasks/{task_id}/events",
    ):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]
    (metrics,) = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert metrics.startswith("text/plain")
    assert "security" not in document
    for path, operations in paths.items():
        for method, operation in operations.items():
            public = not path.startswith("/v1/")
            assert ("security" in operation) is not public, (method, path)
            if not public:
                assert {"401", "503"} <= set(operation["responses"]), (method, path)
                problem = operation["responses"]["401"]["content"]
                assert list(problem) == ["application/problem+json"], (method, path)
    put = paths["/v1/workspaces/{workspace_id}/ui-state/{key}"]["put"]
    assert "application/json" in put["requestBody"]["content"]
    assert "202" in paths["/v1/workspaces/{workspace_id}/tasks"]["post"]["responses"]


async def test_a_generated_client_drives_the_main_flows(
    keel_client: ModuleType, client: httpx.AsyncClient, people: People
) -> None:
    models = importlib.import_module("keel_client.models")
    owner_id, viewer_id = uuid.uuid4(), uuid.uuid4()
    owner, viewer = _as(keel_client, client, owner_id), _as(keel_client, client, viewer_id)
    me = await _api(keel_client, "profile.profile_me").asyncio(client=owner)
    assert me.id == owner_id
    await _api(keel_client, "profile.profile_me").asyncio(client=viewer)

    workspace = await _api(keel_client, "workspaces.workspaces_create").asyncio(
        client=owner, body=models.WorkspaceName(name="Generated")
    )
    assert workspace.name == "Generated"
    added = await _api(keel_client, "members.members_add").asyncio(
        workspace.id,
        client=owner,
        body=models.NewMember(user_id=viewer_id, role=models.Role.VIEWER),
    )
    assert added.user_id == viewer_id

    content = models.DocumentInContent.from_dict({"voice": "warm", "words": 3})
    body = models.DocumentIn(kind="brand", title="Voice", content=content, tags=["tone"])
    created = await _api(keel_client, "foundation.foundation_create").asyncio_detailed(
        workspace.id, client=owner, body=body
    )
    assert created.status_code == 201
    document = created.parsed
    assert created.headers["ETag"] == f'"{document.version}"'
    page = await _api(keel_client, "foundation.foundation_list_documents").asyncio(
        workspace.id, client=viewer, kind="brand"
    )
    assert [item.id for item in page.items] == [document.id]

    update = _api(keel_client, "foundation.foundation_update")
    patch = models.DocumentPatch(title="Voice, v2")
    changed = await update.asyncio(
        workspace.id, document.id, client=owner, body=patch, if_match=f'"{document.version}"'
    )
    assert changed.version == document.version + 1
    stale = await update.asyncio_detailed(
        workspace.id, document.id, client=owner, body=patch, if_match=f'"{document.version}"'
    )
    assert stale.status_code == 412
    assert isinstance(stale.parsed, models.Problem)
    refused = await update.asyncio_detailed(workspace.id, document.id, client=viewer, body=patch)
    assert refused.status_code == 403
    assert isinstance(refused.parsed, models.Problem)
    missing = await _api(keel_client, "foundation.foundation_read").asyncio_detailed(
        workspace.id, uuid.uuid4(), client=owner
    )
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.Problem)

    task_in = models.TaskIn(
        kind=models.TaskKind.SUMMARIZE, input_=models.TaskInInput.from_dict({"text": "hi"})
    )
    accepted = await _api(keel_client, "tasks.tasks_create").asyncio_detailed(
        workspace.id, client=owner, body=task_in, idempotency_key="generated-1"
    )
    assert accepted.status_code == 202
    task = accepted.parsed
    again = await _api(keel_client, "tasks.tasks_create").asyncio_detailed(
        workspace.id, client=owner, body=task_in, idempotency_key="generated-1"
    )
    assert (again.status_code, again.parsed.id) == (200, task.id)
    read = await _api(keel_client, "tasks.tasks_read").asyncio(workspace.id, task.id, client=owner)
    assert read.id == task.id
    await _api(keel_client, "tasks.tasks_cancel").asyncio(workspace.id, task.id, client=owner)

    written = await _api(keel_client, "ui_state.ui_state_write").asyncio(
        workspace.id, "sidebar", client=owner, body={"open": True}
    )
    assert written.key == "sidebar"
    state = await _api(keel_client, "ui_state.ui_state_read").asyncio(
        workspace.id, "sidebar", client=owner
    )
    assert state.key == "sidebar"

    anonymous = await _api(keel_client, "profile.profile_me").asyncio_detailed(
        client=_as(keel_client, client, None)
    )
    assert anonymous.status_code == 401
    assert isinstance(anonymous.parsed, models.Problem)


async def test_swagger_ui_is_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    page = await client.get("/schema/swagger")
    assert page.status_code == 200
    assert "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert f"/schema/assets/{asset}" in page.text
        served = await client.get(f"/schema/assets/{asset}")
        assert served.status_code == 200, asset
        assert len(served.content) > 10_000, asset
