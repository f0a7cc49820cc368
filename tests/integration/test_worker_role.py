"""`keel worker` with a login role made without `--worker` refuses to start in
one sentence that says what to run (it used to log "relay failed; trying again
in 1 s" with a traceback forever); a worker's role passes the same check."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from subprocess import PIPE

import pytest
import sqlalchemy as sa

from adapters.postgres.database import create_engine
from adapters.postgres.provisioning import drop_role, ensure_login_role, with_user
from entrypoints.devstack.services import Services
from entrypoints.role_checks import check_worker_role
from tests.conftest import Database


@pytest.fixture
async def api_only_url(database: Database) -> AsyncIterator[tuple[str, str]]:
    name, password = f"keel_api_only_{uuid.uuid4().hex[:8]}", secrets.token_hex(12)
    await ensure_login_role(database.owner_url, name, password, worker=False)
    try:
        yield name, with_user(database.owner_url, name, password)
    finally:
        engine = create_engine(database.owner_url, pool_size=1)
        async with engine.begin() as conn:  # its CONNECT on this database
            await conn.execute(sa.text(f'drop owned by "{name}"'))
        await engine.dispose()
        await drop_role(database.server_url, name)


async def test_a_worker_without_the_worker_grant_refuses_to_start(
    api_only_url: tuple[str, str], services: Services
) -> None:
    name, url = api_only_url
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEEL_")}
    env.update(KEEL_DATABASE_URL=url, KEEL_REDIS_URL=services.redis_url)
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "entrypoints.cli", "worker", env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(worker.communicate(), timeout=60)
    said = err.decode()
    assert worker.returncode == 2, said
    assert "is not in keel_dispatcher" in said
    assert f"keel db login-role {name} --worker" in said
    assert "Traceback" not in said
    assert "relay failed" not in said + out.decode()


async def test_a_workers_role_passes(database: Database) -> None:
    engine = create_engine(database.runtime_url, pool_size=1)
    try:
        await check_worker_role(engine)
    finally:
        await engine.dispose()
