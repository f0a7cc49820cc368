"""Keel's group roles (keel_app, keel_guard, keel_dispatcher) exist once per
Postgres cluster. Two Keel databases on one cluster (staging beside
production) must not open to each other's login roles, and the runtime
roles hold nothing outside row-level security: no large objects, no
`pg_notify`, no temporary tables.

The attack: a login role made for database B connects to database A and,
being in keel_app, reads A's tenants by setting their variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from adapters.postgres.provisioning import (
    drop_database,
    drop_role,
    ensure_database,
    ensure_login_role,
    with_database,
    with_user,
)
from entrypoints.devstack.services import Services
from entrypoints.migrations import upgrade
from tests.conftest import Database, People

GROUP_ROLES = ("keel_app", "keel_guard", "keel_dispatcher")


@dataclass(frozen=True)
class Deployment:
    """Database B: a second Keel deployment on the same cluster."""

    name: str
    owner_url: str
    logins: dict[str, str]  # what the login role is -> its URL into B


async def _login(server_url: str, sql: str, name: str, password: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(sql.format(name=name, password=password))
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def deployment_b(services: Services) -> AsyncIterator[Deployment]:
    suffix = uuid.uuid4().hex[:10]
    name = f"keel_test_b_{suffix}"
    roles = {
        "B's API login role": f"keel_test_b_api_{suffix}",
        "B's worker login role": f"keel_test_b_wrk_{suffix}",
        "an INHERIT login role in keel_app": f"keel_test_b_inh_{suffix}",
        "a login role in no Keel role": f"keel_test_b_none_{suffix}",
    }
    password = secrets.token_hex(12)
    await ensure_database(services.postgres_url, name)
    owner = with_database(services.postgres_url, name)
    try:
        await asyncio.to_thread(upgrade, owner, log=False)
        await ensure_login_role(owner, roles["B's API login role"], password, worker=False)
        await ensure_login_role(owner, roles["B's worker login role"], password, worker=True)
        await _login(
            services.postgres_url,
            "create role {name} login inherit password '{password}' in role keel_app",
            roles["an INHERIT login role in keel_app"],
            password,
        )
        await _login(
            services.postgres_url,
            "create role {name} login password '{password}'",
            roles["a login role in no Keel role"],
            password,
        )
        yield Deployment(
            name, owner, {what: with_user(owner, role, password) for what, role in roles.items()}
        )
    finally:
        await drop_database(services.postgres_url, name)
        for role in roles.values():
            await drop_role(services.postgres_url, role)


def _into(url: str, database: str) -> str:
    return with_database(url, database)


def _name(url: str) -> str:
    return str(make_url(url).database)


@pytest.mark.parametrize(
    "who",
    [
        "B's API login role",
        "B's worker login role",
        "an INHERIT login role in keel_app",
        "a login role in no Keel role",
    ],
)
async def test_a_login_role_of_another_deployment_cannot_open_this_database(
    deployment_b: Deployment, database: Database, people: People, who: str
) -> None:
    owner = await people.new()
    workspace = await people.workspace(owner, "A's tenant")
    url = _into(deployment_b.logins[who], _name(database.owner_url))
    assert await _break_in(url, owner.id, workspace) is None


async def _break_in(url: str, user: uuid.UUID, workspace: uuid.UUID) -> str | None:
    """None when the database refuses the connection; else what the intruder got."""
    try:
        connection = await asyncpg.connect(url)
    except asyncpg.InsufficientPrivilegeError as refused:
        if "permission denied for database" in str(refused):
            return None
        raise
    read = None
    try:
        with contextlib.suppress(asyncpg.PostgresError):
            async with connection.transaction():
                await connection.execute(
                    "select set_config('role', 'keel_app', true),"
                    " set_config('app.user_id', $1, true),"
                    " set_config('app.workspace_id', $2, true)",
                    str(user),
                    str(workspace),
                )
                read = await connection.fetchval(
                    "select name from workspaces where id = $1", workspace
                )
    finally:
        await connection.close()
    return f"connected, and read workspace name {read!r}"


async def test_this_deployments_login_role_cannot_open_the_other_database(
    deployment_b: Deployment, database: Database
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        await asyncpg.connect(_into(database.runtime_url, deployment_b.name))


@pytest.mark.parametrize("who", ["B's API login role", "B's worker login role"])
async def test_each_deployments_own_login_roles_still_open_their_database(
    deployment_b: Deployment, database: Database, who: str
) -> None:
    for url in (deployment_b.logins[who], database.runtime_url):
        connection = await asyncpg.connect(url)
        try:
            assert await connection.fetchval("select 1") == 1
        finally:
            await connection.close()


@pytest.mark.parametrize("group", GROUP_ROLES)
@pytest.mark.parametrize("privilege", ["CONNECT", "TEMPORARY"])
async def test_no_shared_role_and_not_public_holds_database_privileges(
    deployment_b: Deployment, database: Database, group: str, privilege: str
) -> None:
    """A grant to a shared role would reach every deployment's login roles
    (all are members); PUBLIC reaches every role of the cluster."""
    connection = await asyncpg.connect(database.owner_url)
    try:
        for name in (_name(database.owner_url), deployment_b.name):
            for grantee in (group, "public"):
                held = await connection.fetchval(
                    "select has_database_privilege($1, $2, $3)", grantee, name, privilege
                )
                assert held is False, (grantee, name, privilege)
    finally:
        await connection.close()


@pytest.mark.parametrize("as_keel_app", [False, True])
async def test_the_runtime_role_cannot_create_temporary_tables(
    database: Database, as_keel_app: bool
) -> None:
    connection = await asyncpg.connect(database.runtime_url)
    try:
        async with connection.transaction():
            if as_keel_app:
                await connection.execute("set local role keel_app")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="temporary tables"):
                await connection.execute("create temporary table keel_probe (x int)")
    finally:
        await connection.close()
