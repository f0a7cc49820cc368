"""`keel …`: the command line.

keel dev                          everything, with embedded services when no URLs are set
keel api                          the HTTP API (production)
keel worker [--concurrency N]     the task worker (production)
keel token --sub UUID             a signed development token
keel db ACTION                    migrations and roles (`keel db --help` lists them)
keel doctor [--json] [--api URL]  read-only checks of Postgres, Redis (and a running API)
keel dead-letters list|show|replay  the queue's dead letters (replay: as a dashboard's retry)
keel bench [--agents K] [--duration S]  concurrent AI agents against a stack it starts (a report)
keel audit [--url URL] [--write SECURITY.md]  the red-team audit: one line per attack class
keel COMMAND --help               a command's options and the variables it reads
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from entrypoints import dead_letters_cli
from entrypoints.settings import ConfigError, Settings, describe, load_settings

if TYPE_CHECKING:
    from types import FrameType

    from alembic.config import Config


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from entrypoints.devstack.stack import existing_dev_secret
    from entrypoints.http.auth import issue_token

    secret = settings.jwt_secret or existing_dev_secret(settings.data_path)
    if secret is None:
        # Making a secret here would sign tokens that no server accepts.
        print(
            "keel token: no signing secret. Set KEEL_JWT_SECRET to the API's secret, or run"
            f" it where `keel dev` keeps its data ({settings.data_path}/jwt-secret is missing;"
            " KEEL_DATA_DIR moves it).",
            file=sys.stderr,
        )
        return 2
    print(issue_token(secret, settings.jwt_audience, args.sub, args.email, args.ttl))
    return 0


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from entrypoints.audit import audit
    from entrypoints.devstack.stack import existing_dev_secret

    return audit(
        url=args.url,
        secret=settings.jwt_secret or existing_dev_secret(settings.data_path),
        audience=settings.jwt_audience,
        write=args.write,
        pytest_args=args.pytest_args,
    )


def _dev(settings: Settings, _args: argparse.Namespace) -> int:
    from entrypoints.devstack.stack import run_dev

    return run_dev(settings)


def _api(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn

    from entrypoints.http.app import create_app, drain_event_streams
    from entrypoints.http.heads import HeadLimits, bounded
    from entrypoints.logging import configure_logging
    from entrypoints.role_checks import check_database_role
    from entrypoints.tracing import configure_tracing

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Open event streams would hold the shutdown until the timeout:
            # close them now, each with a retry hint.
            drain_event_streams(app)
            super().handle_exit(sig, frame)

    configure_logging(settings.log_level)
    configure_tracing(settings, "keel-api")
    app = create_app(settings)
    asyncio.run(_with_engine(settings, check_database_role))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=bounded(HeadLimits.of(settings)),
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    server = _Server(config)
    server.run()
    return 0 if server.started else 1


async def _with_engine(settings: Settings, check: Callable[..., Awaitable[None]]) -> None:
    from adapters.postgres.database import create_engine

    assert settings.database_url is not None
    engine = create_engine(
        settings.database_url, pool_size=1, statement_cache=settings.statement_cache
    )
    try:
        await check(engine)
    finally:
        await engine.dispose()


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from entrypoints.logging import configure_logging
    from entrypoints.role_checks import check_worker_role
    from entrypoints.tracing import configure_tracing
    from entrypoints.worker import main as run

    configure_logging(settings.log_level)
    configure_tracing(settings, "keel-worker")
    settings.require("database_url", "redis_url")
    asyncio.run(_with_engine(settings, check_worker_role))
    return run(settings, args.concurrency)


def _doctor(settings: Settings, args: argparse.Namespace) -> int:
    from entrypoints.doctor import doctor

    return doctor(settings, json=args.json, api=args.api)


def _bench(_settings: Settings, args: argparse.Namespace) -> int:
    # bench/ is imported only here: `keel api` and `keel worker` never load it.
    from bench.agents import plot
    from bench.agents.command import exit_status, run
    from bench.agents.runner import Options

    if not plot.available():
        print(f"keel bench: {plot.INSTALL}", file=sys.stderr)
        return 2
    options = Options(
        agents=args.agents,
        duration=args.duration,
        api_processes=args.api_processes,
        workers=args.workers,
        load_processes=args.load_processes,
        token_delay_ms=args.token_delay_ms,
        out=args.out,
    )
    argv = [a for a in sys.argv[1:] if a != "bench"]
    return exit_status(run(options, scaling_table=args.scaling, argv=argv))


def _migration_url(settings: Settings) -> str:
    settings.require("migration_database_url")
    assert settings.migration_database_url is not None
    return settings.migration_database_url


def _db(settings: Settings, args: argparse.Namespace) -> int:
    from alembic import command
    from alembic.util import CommandError as AlembicCommandError
    from sqlalchemy.exc import DBAPIError

    from entrypoints.migrations import alembic_config

    if args.action == "slow-queries":
        return _slow_queries(_migration_url(settings))
    if args.action == "login-role":
        from adapters.postgres.provisioning import ensure_login_role

        password = os.environ.get(args.password_env) if args.password_env else None
        asyncio.run(
            ensure_login_role(_migration_url(settings), args.name, password, worker=args.worker)
        )
        roles = "keel_app and keel_dispatcher" if args.worker else "keel_app"
        print(
            f"login role {args.name} is ready (LOGIN NOINHERIT, member of {roles},"
            " may connect to this database only)"
        )
        return 0
    url = _migration_url(settings)
    config = alembic_config(url)
    actions: dict[str, Callable[[], None]] = {
        "upgrade": lambda: command.upgrade(config, args.revision or "head"),
        "downgrade": lambda: command.downgrade(config, args.revision),
        "current": lambda: command.current(config, verbose=True),
        "history": lambda: command.history(config, indicate_current=True),
        "sql": lambda: command.upgrade(config, args.revision or "head", sql=True),
    }
    try:
        if args.action == "check":
            return _check(config, url)
        actions[args.action]()
        return 0
    except AlembicCommandError as error:
        print(f"keel db {args.action}: {error}", file=sys.stderr)
        return 1
    except DBAPIError as error:
        # Each migration runs in its own transaction: the failed one was rolled
        # back, and the database stays at the last revision that succeeded.
        current = asyncio.run(_current_revision(url)) or "base"
        print(
            f"keel db {args.action}: the migration after revision {current} failed"
            f" and was rolled back; the database is still at {current}.\n{error.orig}",
            file=sys.stderr,
        )
        return 1


async def _current_revision(url: str) -> str | None:
    import sqlalchemy as sa

    from adapters.postgres.database import create_engine

    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            if await conn.scalar(sa.text("select to_regclass('alembic_version')")) is None:
                return None
            revision = await conn.scalar(sa.text("select version_num from alembic_version"))
            return str(revision) if revision else None
    finally:
        await engine.dispose()


def _slow_queries(url: str) -> int:
    from adapters.postgres.database import create_engine
    from adapters.postgres.statements import StatementsUnavailableError, top_statements

    async def read() -> list[Any]:
        engine = create_engine(url, pool_size=1)
        try:
            return await top_statements(engine)
        finally:
            await engine.dispose()

    try:
        statements = asyncio.run(read())
    except StatementsUnavailableError as error:
        print(f"keel db slow-queries: {error}", file=sys.stderr)
        return 1
    print(f"{'calls':>8} {'total ms':>12} {'mean ms':>10} {'rows':>8}  query")
    for s in statements:
        query = " ".join(s.query.split())[:120]
        print(f"{s.calls:>8} {s.total_ms:>12.1f} {s.mean_ms:>10.2f} {s.rows:>8}  {query}")
    return 0


def _check(config: Config, url: str) -> int:
    """Models vs migrations (Alembic's check), then RLS in the live catalog."""
    from alembic import command

    from adapters.postgres.catalog import rls_problems
    from adapters.postgres.database import create_engine

    command.check(config)
    print("keel db check: the migrations match the models")

    async def inspect() -> list[str]:
        engine = create_engine(url, pool_size=1)
        try:
            return await rls_problems(engine)
        finally:
            await engine.dispose()

    problems = asyncio.run(inspect())
    for problem in problems:
        print(f"keel db check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("keel db check: every table forces row-level security with a policy per command")
    return 0


_SERVICES = (
    "database_url",
    "redis_url",
    "redis_cluster",
    "db_pool_size",
    "db_command_timeout_s",
    "db_statement_cache",
    "db_pooler",
    "log_level",
)
_API = (
    *_SERVICES,
    "jwt_secret",
    "jwt_audience",
    "jwt_jwks_url",
    "jwt_jwks_refresh_s",
    "jwt_issuer",
    "jwt_leeway_s",
    "host",
    "port",
    "cache",
    "hot_reads",
    "cache_timeout_ms",
    "cache_bytes_per_workspace",
    "slow_query_ms",
    "queue_prefix",
    "task_rate_per_minute",
    "sse_heartbeat_s",
    "sse_streams_per_user",
    "sse_tickets_per_user",
    "sse_buffer_events",
    "ui_state_entries_per_user",
    "ui_state_bytes_per_user",
    "max_workspaces_per_user",
    "max_body_bytes",
    "cors_origins",
    "max_head_bytes",
    "max_header_fields",
    "head_timeout_s",
    "tracing",
)
_WORKER = (
    *_SERVICES,
    "database_listen_url",
    "cache",
    "cache_bytes_per_workspace",
    "queue_prefix",
    "model_provider",
    "sim_token_delay_ms",
    "sim_fail_rate",
    "openai_base_url",
    "openai_api_key",
    "openai_model",
    "workspace_max_running",
    "task_lease_s",
    "task_redispatch_s",
    "retry_base_ms",
    "retry_cap_ms",
    "webhook_allow_private",
    "webhook_max_attempts",
    "webhook_timeout_s",
    "webhook_lease_s",
    "worker_fetching",
    "worker_metrics_port",
    "tracing",
)
_DEV = ("data_dir", "database_url", "migration_database_url", "redis_url", "jwt_secret", "port")
COMMAND_SETTINGS: dict[str, tuple[str, ...]] = {
    "dev": _DEV,
    "api": _API,
    "worker": _WORKER,
    "token": ("jwt_secret", "jwt_audience", "data_dir"),
    "db": ("migration_database_url",),
    "doctor": ("database_url", "migration_database_url", "redis_url"),
    "bench": ("database_url", "migration_database_url", "redis_url", "jwt_secret"),
    "audit": ("jwt_secret", "jwt_audience", "data_dir"),
}
_DB_ACTIONS = {
    "upgrade": "apply migrations up to REVISION (default: head)",
    "downgrade": "revert migrations down to REVISION (e.g. -1 or base)",
    "current": "the database's revision",
    "history": "every migration, the current one marked",
    "check": "models vs. migrations, then row-level security in the live catalog",
    "sql": "print the SQL of an upgrade to REVISION (default: head) without running it",
    "slow-queries": "top statements by total time, from pg_stat_statements",
    "login-role": "create or update a runtime login role NAME (LOGIN, NOINHERIT, in keel_app,"
    " CONNECT on this database only)",
}


def _command(
    commands: Any, name: str, summary: str, about: str, run: Callable[..., int]
) -> argparse.ArgumentParser:
    variables = describe(*COMMAND_SETTINGS[name.split()[0]])
    command: argparse.ArgumentParser = commands.add_parser(
        name.split()[-1],
        help=summary,
        description=about,
        epilog=f"environment variables it reads:\n{variables}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.set_defaults(run=run)
    return command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keel", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _command(
        commands,
        "dev",
        "run everything locally",
        "Start the API and a worker; with no URLs set, also an embedded Postgres and Redis"
        " (data in KEEL_DATA_DIR). Prints the URLs and a token. Every variable of"
        " `keel api` and `keel worker` applies too.",
        _dev,
    )
    _command(
        commands,
        "api",
        "serve the HTTP API",
        "Serve the HTTP API (production). Refuses to start with a database role that could"
        " bypass row-level security.",
        _api,
    )
    worker = _command(
        commands,
        "worker",
        "run AI tasks from the queue",
        "Run tasks from the queue; also relays the task outbox and recovers lost tasks.",
        _worker,
    )
    worker.add_argument("--concurrency", type=int, default=8, help="tasks run at once")
    token = _command(
        commands,
        "token",
        "print a signed development token",
        "Print a token the API accepts, signed with KEEL_JWT_SECRET or the secret"
        " `keel dev` keeps in KEEL_DATA_DIR.",
        _token,
    )
    token.add_argument("--sub", type=uuid.UUID, required=True, help="the user's UUID")
    token.add_argument("--email", default=None, help="the email claim")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    doctor = _command(
        commands,
        "doctor",
        "check that Postgres and Redis are set up safely",
        "Read-only checks of the configured Postgres and Redis: one ok / warn / fail line"
        " each, with why and how to fix it; exits 1 on any fail.",
        _doctor,
    )
    doctor.add_argument("--json", action="store_true", help="one JSON document, for machines")
    doctor.add_argument(
        "--api", metavar="URL", help="also check a running API (readiness, 401, OpenAPI, metrics)"
    )
    audit = _command(
        commands,
        "audit",
        "run the red-team audit",
        "Run every attack of tests/security (pytest, from a clone of Keel; the tests'"
        " services as `pytest` finds them) and the black-box attacks against --url or a"
        " server it starts; one line per attack class: tried, held, failed. Exits 1 on any"
        " failure. KEEL_JWT_SECRET (or `keel dev`'s) signs the black box's tokens for --url.",
        _audit,
    )
    audit.add_argument("--url", help="attack this running API (default: one the suite starts)")
    audit.add_argument(
        "--write", type=Path, metavar="FILE", help="replace the audit table in FILE (SECURITY.md)"
    )
    audit.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    db = commands.add_parser(
        "db",
        help="migrations and database roles",
        description="Migrations (Alembic) and database roles, as the schema owner.",
    )
    actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, about in _DB_ACTIONS.items():
        sub = _command(actions, f"db {action}", about, about[0].upper() + about[1:] + ".", _db)
        if action in ("upgrade", "sql"):
            sub.add_argument("revision", nargs="?", help="target revision (default: head)")
        if action == "downgrade":
            sub.add_argument("revision", help="target revision, e.g. -1 or base")
        if action == "login-role":
            sub.add_argument("name", help="the login role's name")
            sub.add_argument(
                "--password-env", metavar="VAR", help="read its password from this variable"
            )
            sub.add_argument(
                "--worker", action="store_true", help="for workers: also in keel_dispatcher"
            )
    _bench_command(commands)
    dead_letters_cli.register(commands)
    return parser


def _bench_command(commands: Any) -> None:
    bench = _command(
        commands,
        "bench",
        "load-test concurrent AI agents (a report)",
        "Start Postgres and Redis (embedded, or the configured URLs), API processes and"
        " workers; seed workspaces; run simulated agents from separate load processes with"
        " the cache on, then off; write report.md, report.json and plot.png under --out."
        " With the URLs set, the database must be migrated and KEEL_JWT_SECRET be its"
        " API's secret; KEEL_MIGRATION_DATABASE_URL adds Postgres statement counts.",
        _bench,
    )
    bench.add_argument("--agents", type=int, default=16, help="simulated agents (default 16)")
    bench.add_argument(
        "--duration", type=float, default=40, help="seconds of load per phase (default 40)"
    )
    bench.add_argument(
        "--api-processes", type=int, default=2, help="`keel api` processes (default 2)"
    )
    bench.add_argument("--workers", type=int, default=2, help="`keel worker` processes (default 2)")
    bench.add_argument(
        "--load-processes", type=int, default=2, help="processes running agents (default 2)"
    )
    bench.add_argument(
        "--token-delay-ms",
        type=int,
        default=20,
        help="the simulated model's pause per token (default 20)",
    )
    bench.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="where the report goes (default bench-results)",
    )
    bench.add_argument(
        "--scaling",
        action="store_true",
        help="instead: the same load on 1, 2 and 4 API processes and workers (a table)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        return int(args.run(settings, args))
    except ConfigError as error:
        for problem in error.problems:
            print(f"keel: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
