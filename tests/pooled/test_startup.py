"""`keel api` through PgBouncer in transaction mode, as a user starts it: the
issue's reproduction (it exited at start-up with `prepared statement
"__asyncpg_stmt_1__" already exists`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from entrypoints.settings import Settings
from tests.pooler import free_port


def _serve_once(settings: Settings, url: str, **extra: str) -> tuple[int | None, str]:
    """Start `keel api` on a free port; (exit code if it exited, its output)."""
    port = free_port()
    assert settings.redis_url is not None
    assert settings.jwt_secret is not None
    env = {
        **os.environ,
        "KEEL_DATABASE_URL": url,
        "KEEL_REDIS_URL": settings.redis_url,
        "KEEL_JWT_SECRET": settings.jwt_secret,
        "KEEL_PORT": str(port),
        **extra,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "api"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    finally:
        code = process.poll()
        if code is None:
            process.terminate()
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    return code, output


def test_keel_api_starts_through_the_pooler_with_the_statement_cache_off(
    settings: Settings, pooled_url: str
) -> None:
    # Before unique statement names, the app's first connection prepared
    # `__asyncpg_stmt_1__` on the server connection the start-up role check had
    # just left it in, and `keel api` exited.
    code, output = _serve_once(settings, pooled_url, KEEL_DB_STATEMENT_CACHE="false")
    assert code is None, output
    assert "already exists" not in output
