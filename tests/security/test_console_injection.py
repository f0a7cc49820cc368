"""Script injection through the developer console (GET /console).

The console shows what users wrote: workspace names in its list, a task's
output token by token and its result. An attacker names a workspace, titles
a document or writes a prompt (which the model echoes) with `<script>` and
event-handler payloads. The page is static (nothing is rendered into it on
the server), its script writes data only as text, its policy lets it run its
own inline script alone, and the API answers that carry the payloads are
JSON that a browser never sniffs into a page nor runs when opened directly.
(tests/browser/test_console.py drives the page in Chromium.)
"""

from __future__ import annotations

import re

import httpx

from entrypoints.http.console import PAGE
from tests.conftest import People

PAYLOADS = [
    "<script>window.pwned=1</script>",
    '<img src=x onerror="window.pwned=1">',
    '"><svg onload=window.pwned=1>',
    "</title><script>window.pwned=1</script>",
    "javascript:window.pwned=1",
]
# Every DOM API that parses a string as HTML, runs one as code or loads a URL.
SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
    r"|setTimeout\(\s*[\"'`]|setInterval\(|\.src\s*=|\.href\s*=|srcdoc|createContextualFragment"
    r"|DOMParser|\.html\("
)


def test_the_console_script_writes_data_only_as_text() -> None:
    script = re.search(r"<script>(.*?)</script>", PAGE, re.DOTALL)
    assert script is not None
    assert SINKS.findall(script.group(1)) == []
    assert "textContent" in script.group(1)
    assert len(re.findall(r"<script", PAGE)) == 1, "one inline script, the hashed one"


async def test_the_console_is_static_and_runs_only_its_own_script(
    client: httpx.AsyncClient,
) -> None:
    plain = await client.get("/console")
    for payload in PAYLOADS:
        hostile = await client.get("/console", params={"q": payload, "ws": payload})
        assert hostile.status_code == 200
        assert hostile.text == plain.text
    csp = dict(
        part.strip().split(" ", 1)
        for part in plain.headers["content-security-policy"].split(";")
        if part.strip()
    )
    assert csp["default-src"] == "'none'"
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/=]+'", csp["script-src"]), csp
    assert csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in plain.headers["content-security-policy"]
    assert plain.headers["x-content-type-options"] == "nosniff"


async def test_answers_carrying_payloads_are_json_a_browser_never_runs(
    client: httpx.AsyncClient, people: People
) -> None:
    owner = await people.new()
    for payload in PAYLOADS:
        created = await client.post("/v1/workspaces", json={"name": payload}, headers=owner.headers)
        assert created.status_code == 201, created.text
        workspace = created.json()["id"]
        base = f"/v1/workspaces/{workspace}"
        document = {"kind": "brand", "title": payload, "content": {"x": payload}, "tags": []}
        task = {"kind": "generate", "input": {"prompt": payload}}
        answers = [
            created,
            await client.post(f"{base}/foundation", json=document, headers=owner.headers),
            await client.post(f"{base}/tasks", json=task, headers=owner.headers),
            await client.get("/v1/workspaces", headers=owner.headers),
            await client.get(f"{base}/foundation", headers=owner.headers),
            await client.get(f"/v1/nothing/{payload}", headers=owner.headers),
        ]
        for answer in answers:
            assert answer.headers["content-type"].startswith("application/"), answer.headers
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["content-security-policy"] == (
                "default-src 'none'; frame-ancestors 'none'"
            )
