"""`keel …`: the command line.

keel dev                          everything, with embedded services when no URLs are set
keel api                          the HTTP API (production)
keel token --sub UUID             a signed development token
keel db upgrade|downgrade|current|history|check|sql
keel db login-role NAME           create/update a runtime login role (password from env)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence

from entrypoints.settings import ConfigError, Settings, load_settings


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from entrypoints.devstack.stack import dev_secret
    from entrypoints.http.auth import issue_token

    secret = settings.jwt_secret or dev_secret(settings.data_path)
    print(issue_token(secret, settings.jwt_audience, args.sub, args.email, args.ttl))
    return 0


def _dev(settings: Settings, _args: argparse.Namespace) -> int:
    from entrypoints.devstack.stack import run_dev

    return run_dev(settings)


def _api(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn

    from entrypoints.http.app import check_database_role, create_app

    app = create_app(settings)
    asyncio.run(_with_engine(settings, check_database_role))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


async def _with_engine(settings: Settings, check: Callable[..., Awaitable[None]]) -> None:
    from adapters.postgres.database import create_engine

    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        await check(engine)
    finally:
        await engine.dispose()


def _migration_url(settings: Settings) -> str:
    settings.require("migration_database_url")
    assert settings.migration_database_url is not None
    return settings.migration_database_url


def _db(settings: Settings, args: argparse.Namespace) -> int:
    from alembic import command

    from entrypoints.migrations import alembic_config

    if args.action == "login-role":
        from adapters.postgres.provisioning import ensure_login_role

        password = os.environ.get(args.password_env) if args.password_env else None
        asyncio.run(ensure_login_role(_migration_url(settings), args.name, password))
        print(f"login role {args.name} is ready (LOGIN NOINHERIT, member of keel_app)")
        return 0
    config = alembic_config(_migration_url(settings))
    actions: dict[str, Callable[[], None]] = {
        "upgrade": lambda: command.upgrade(config, args.revision or "head"),
        "downgrade": lambda: command.downgrade(config, args.revision),
        "current": lambda: command.current(config, verbose=True),
        "history": lambda: command.history(config, indicate_current=True),
        "check": lambda: command.check(config),
        "sql": lambda: command.upgrade(config, args.revision or "head", sql=True),
    }
    actions[args.action]()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keel", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("dev", help="run everything locally").set_defaults(run=_dev)
    commands.add_parser("api", help="serve the HTTP API").set_defaults(run=_api)
    token = commands.add_parser("token", help="print a signed development token")
    token.add_argument("--sub", type=uuid.UUID, required=True, help="the user's UUID")
    token.add_argument("--email", default=None)
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(run=_token)
    db = commands.add_parser("db", help="migrations and database roles")
    db.add_argument(
        "action",
        choices=["upgrade", "downgrade", "current", "history", "check", "sql", "login-role"],
    )
    db.add_argument("revision", nargs="?", help="target revision (login-role: the role name)")
    db.add_argument("--password-env", help="login-role: read the password from this variable")
    db.set_defaults(run=_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "db" and args.action == "downgrade" and not args.revision:
        print("keel db downgrade needs a target revision (e.g. -1 or base)", file=sys.stderr)
        return 2
    if args.command == "db" and args.action == "login-role":
        if not args.revision:
            print("keel db login-role needs the role's name", file=sys.stderr)
            return 2
        args.name = args.revision
    try:
        settings = load_settings()
        return int(args.run(settings, args))
    except ConfigError as error:
        for problem in error.problems:
            print(f"keel: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
