"""Administrative statements run as the schema owner or a superuser:
databases and the runtime login role. Identifiers are quoted by Postgres
(format %I) or validated here; nothing user-typed is spliced into SQL.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy import pool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from adapters.postgres.database import async_url

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _checked(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain lower-case SQL identifier")
    return name


def _admin_engine(url: str) -> AsyncEngine:
    return create_async_engine(
        async_url(url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
    )


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def with_user(url: str, user: str, password: str | None = None) -> str:
    return make_url(url).set(username=user, password=password).render_as_string(hide_password=False)


async def ensure_database(server_url: str, name: str) -> bool:
    """Create database `name` unless it exists; True if it was created."""
    engine = _admin_engine(server_url)
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(
                sa.text("select 1 from pg_database where datname = :n"), {"n": name}
            )
            if not exists:
                await conn.execute(sa.text(f'create database "{_checked(name)}"'))
            return not exists
    finally:
        await engine.dispose()


async def drop_database(server_url: str, name: str) -> None:
    engine = _admin_engine(server_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(f'drop database if exists "{_checked(name)}" with (force)'))
    finally:
        await engine.dispose()


async def ensure_login_role(
    owner_url: str, name: str, password: str | None = None, *, worker: bool = True
) -> None:
    """A runtime login role: LOGIN, NOINHERIT, no superuser, no BYPASSRLS, in keel_app
    (and, for workers, keel_dispatcher: the outbox functions that see every workspace),
    with CONNECT on `owner_url`'s database (migration 0010 took it from PUBLIC).

    NOINHERIT: it holds no privilege until a transaction switches to keel_app,
    so a code path that forgot the tenant context can read no table at all.
    Needs `keel db upgrade` first (it creates the roles).
    """
    engine = _admin_engine(owner_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(
                sa.text(
                    """
                    select set_config('keel.login_role', :name, false),
                           set_config('keel.login_password', coalesce(:password, ''), false),
                           set_config('keel.login_worker', :worker, false)
                    """
                ),
                {"name": _checked(name), "password": password, "worker": str(worker).lower()},
            )
            await conn.execute(
                sa.text(
                    """
                    do $$
                    declare
                      role_name text := current_setting('keel.login_role');
                      secret text := nullif(current_setting('keel.login_password'), '');
                    begin
                      if not exists (select from pg_roles where rolname = role_name) then
                        execute format('create role %I login noinherit', role_name);
                      end if;
                      execute format('alter role %I login noinherit password %L',
                                     role_name, secret);
                      execute format('grant keel_app to %I', role_name);
                      -- This database only, and to the login role itself: the
                      -- shared roles' members include other deployments' roles.
                      execute format('grant connect on database %I to %I',
                                     current_database(), role_name);
                      if current_setting('keel.login_worker')::boolean then
                        execute format('grant keel_dispatcher to %I', role_name);
                      end if;
                    end
                    $$
                    """
                )
            )
    finally:
        await engine.dispose()


async def drop_role(server_url: str, name: str) -> None:
    engine = _admin_engine(server_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(f'drop role if exists "{_checked(name)}"'))
    finally:
        await engine.dispose()
