"""What code running as a runtime role may do outside row-level security:
nothing. Large objects have no tenant and no policy, and `pg_notify` posts
on the workers' channel: keel_app, keel_dispatcher and the login roles may
execute neither. A plain `NOTIFY` needs no privilege, so a forged one on
the workers' channel must be a wake-up hint at most: its payload is never
read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.dispatch import PgTaskDispatcher
from adapters.postgres.tasks import CHANNEL
from tests.conftest import Database, People

# Every call that reaches a large object or posts a notification, one per
# function PUBLIC may execute in a fresh database.
CALLS = {
    "lo_create": "select lo_create(0)",
    "lo_creat": "select lo_creat(-1)",
    "lo_from_bytea": "select lo_from_bytea(0, 'stash')",
    "lo_import": "select lo_import('/etc/hostname')",
    "lo_import with oid": "select lo_import('/etc/hostname', 4242424)",
    "lo_export": "select lo_export(1, '/tmp/keel_probe')",
    "lo_open": "select lo_open(1, 262144)",
    "lo_close": "select lo_close(0)",
    "loread": "select loread(0, 10)",
    "lowrite": "select lowrite(0, 'x')",
    "lo_lseek": "select lo_lseek(0, 0, 0)",
    "lo_lseek64": "select lo_lseek64(0, 0, 0)",
    "lo_tell": "select lo_tell(0)",
    "lo_tell64": "select lo_tell64(0)",
    "lo_truncate": "select lo_truncate(0, 0)",
    "lo_truncate64": "select lo_truncate64(0, 0)",
    "lo_get": "select lo_get(1)",
    "lo_get slice": "select lo_get(1, 0, 10)",
    "lo_put": "select lo_put(1, 0, 'x')",
    "lo_unlink": "select lo_unlink(1)",
    "pg_notify": f"select pg_notify('{CHANNEL}', 'forged')",
}
AS = {
    "keel_app in a tenant": "select set_config('role', 'keel_app', true),"
    " set_config('app.user_id', gen_random_uuid()::text, true),"
    " set_config('app.workspace_id', gen_random_uuid()::text, true)",
    "keel_dispatcher": "select set_config('role', 'keel_dispatcher', true)",
    "the login role alone": "select 1",
}


@pytest.mark.parametrize("who", list(AS))
@pytest.mark.parametrize("call", list(CALLS))
async def test_runtime_roles_cannot_reach_large_objects_or_pg_notify(
    database: Database, who: str, call: str
) -> None:
    connection = await asyncpg.connect(database.runtime_url)
    try:
        async with connection.transaction():
            await connection.execute(AS[who])
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await connection.execute(CALLS[call])
    finally:
        await connection.close()


async def test_no_overload_of_them_is_executable_by_a_runtime_role(
    owner_engine: AsyncEngine, database: Database
) -> None:
    """The catalog itself, so an overload missing from CALLS is caught too."""
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "select p.oid::regprocedure::text as function, r.name from pg_proc p"
                " cross join unnest(array['keel_app', 'keel_guard', 'keel_dispatcher',"
                "   'public', :runtime]) as r(name)"
                " where p.pronamespace = 'pg_catalog'::regnamespace"
                "   and (p.proname like 'lo\\_%'"
                "        or p.proname in ('loread', 'lowrite', 'pg_notify'))"
                "   and has_function_privilege(r.name, p.oid, 'execute')"
            ),
            {"runtime": database.runtime_role},
        )
        assert [tuple(row) for row in rows] == []


async def _finished_elsewhere(owner_engine: AsyncEngine) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A finished task of a workspace nobody in the test belongs to."""
    user, workspace, task = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with owner_engine.begin() as conn:
        await conn.execute(sa.text("insert into users (id) values (:u)"), {"u": user})
        await conn.execute(
            sa.text("insert into workspaces (id, name, created_by) values (:w, 'other', :u)"),
            {"w": workspace, "u": user},
        )
        await conn.execute(
            sa.text(
                "insert into tasks (workspace_id, id, kind, input, created_by, status,"
                " finished_at) values (:w, :t, 'summarize', '{}', :u, 'cancelled', now())"
            ),
            {"w": workspace, "t": task, "u": user},
        )
    return workspace, task, user


class _RollbackError(Exception):
    """Leaves a batch without committing it."""


async def _peek(dispatcher: PgTaskDispatcher) -> set[uuid.UUID]:
    """The tasks a batch would take, rolled back: other tests' tasks stay queued."""
    taken: set[uuid.UUID] = set()
    with contextlib.suppress(_RollbackError):
        async with dispatcher.batch(1000) as batch:
            taken = {dispatch.ref.task_id for dispatch in batch}
            raise _RollbackError
    return taken


@pytest.mark.parametrize(
    "payload",
    [
        "forged-task",
        "json",
        "huge",
        "sql",
    ],
)
async def test_a_forged_notification_only_wakes_the_dispatcher(
    engine: AsyncEngine, owner_engine: AsyncEngine, database: Database, payload: str
) -> None:
    workspace, task, user = await _finished_elsewhere(owner_engine)
    text = {
        "forged-task": f"{workspace}:{task}:{user}",
        "json": json.dumps(
            {"workspace_id": str(workspace), "id": str(task), "created_by": str(user)}
        ),
        "huge": "x" * 7900,
        "sql": "'); update tasks set status = 'queued'; --",
    }[payload]
    dispatcher = PgTaskDispatcher(engine, database.runtime_url)
    try:
        await dispatcher.wait_for_work(0.01)  # starts listening
        sender = await asyncpg.connect(database.runtime_url)
        try:
            async with sender.transaction():
                await sender.execute(AS["keel_app in a tenant"])
                await sender.execute(f"notify {CHANNEL}, {_literal(text)}")
        finally:
            await sender.close()
        await asyncio.wait_for(dispatcher.wait_for_work(60), 30)
        assert task not in await _peek(dispatcher)
    finally:
        await dispatcher.close()
    async with owner_engine.connect() as conn:
        status = await conn.scalar(sa.text("select status from tasks where id = :t"), {"t": task})
        assert status == "cancelled"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def test_a_new_task_still_wakes_the_dispatcher(
    engine: AsyncEngine, database: Database, people: People
) -> None:
    """The API's wake-up is a plain NOTIFY as keel_app: it needs no privilege."""
    owner = await people.new()
    workspace = await people.workspace(owner)
    dispatcher = PgTaskDispatcher(engine, database.runtime_url)
    try:
        await dispatcher.wait_for_work(0.01)
        created = await people.client.post(
            f"/v1/workspaces/{workspace}/tasks",
            json={"kind": "summarize", "input": {"text": "wake up"}},
            headers=owner.headers,
        )
        assert created.status_code == 202, created.text
        await asyncio.wait_for(dispatcher.wait_for_work(60), 30)
    finally:
        await dispatcher.close()
