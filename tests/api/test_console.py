"""The developer console page: public, static, locked down by its CSP."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx


async def test_the_console_is_public_html_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/console")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp
    script = re.search(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "http://" not in response.text
    assert "https://" not in response.text


async def test_the_console_is_not_in_the_api_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/console" not in schema["paths"]
