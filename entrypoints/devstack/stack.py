"""`keel dev`: the whole system on one machine, with one command.

Embedded PostgreSQL and Redis when no URLs are configured, migrations, the
runtime login role, then the API (and later the worker) as child processes.
The URLs it uses go to KEEL_DATA_DIR/dev.env (mode 0600), for `keel worker`,
`keel doctor`, psql or redis-cli in another shell (docs/VERIFY.md). A worker
killed by a signal is started again, as a process manager would; a child
that exits by itself ends `keel dev`. Ctrl-C or SIGTERM stops the children in order; if this process
is killed, PR_SET_PDEATHSIG stops them anyway.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import FrameType
from typing import IO

from adapters.postgres.database import create_engine
from adapters.postgres.provisioning import (
    ensure_database,
    ensure_login_role,
    with_database,
    with_user,
)
from adapters.postgres.statements import install_statement_stats
from entrypoints.devstack.postgres import EmbeddedPostgres
from entrypoints.devstack.process import spawn, stop
from entrypoints.devstack.redis import EmbeddedRedis
from entrypoints.http.auth import issue_token
from entrypoints.migrations import upgrade
from entrypoints.settings import Settings

DATABASE = "keel"
RUNTIME_ROLE = "keel_runtime"
TOKEN_TTL_S = 24 * 3600
WORKER = [sys.executable, "-m", "entrypoints.cli", "worker"]
# What dev.env keeps: the variables that reach this keel dev's services.
_SHARED = ("DATABASE_URL", "REDIS_URL", "JWT_SECRET")


class StopSignalError(Exception):
    """SIGTERM or SIGINT arrived."""


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise StopSignalError(signal.Signals(signum).name)


def _say(message: str) -> None:
    print(f"keel dev: {message}", flush=True)


def _kept(path: Path, make: str) -> str:
    """A value kept in KEEL_DATA_DIR across restarts (mode 0600)."""
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(make)
    return path.read_text().strip()


def dev_secret(data_dir: Path) -> str:
    """`keel dev`'s signing secret: made on first use, then kept in `data_dir`."""
    return _kept(data_dir / "jwt-secret", secrets.token_urlsafe(48))


def existing_dev_secret(data_dir: Path) -> str | None:
    """The secret a `keel dev` keeps in `data_dir`, if one ever ran there."""
    path = data_dir / "jwt-secret"
    return path.read_text().strip() if path.is_file() else None


def _lock(data_dir: Path) -> IO[str] | None:
    """Hold KEEL_DATA_DIR for this process; None if another keel dev holds it."""
    handle = open(data_dir / "dev.lock", "w")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def run_dev(settings: Settings) -> int:
    data_dir = settings.data_path
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = _lock(data_dir)
    if lock is None:
        _say(f"another keel dev is already using {data_dir.resolve()}; stop it first")
        return 1
    env = dict(os.environ)
    services: list[EmbeddedPostgres | EmbeddedRedis] = []
    # Stopped in this order; _watch replaces a worker that died.
    children: dict[str, subprocess.Popen[bytes]] = {}
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        env.update(_databases(settings, services))
        if settings.redis_url is None:
            _say("starting embedded Redis")
            redis = EmbeddedRedis(data_dir)
            services.append(redis)
            env["KEEL_REDIS_URL"] = redis.start()
        secret = settings.jwt_secret or dev_secret(data_dir)
        env["KEEL_JWT_SECRET"] = secret
        _write_env(data_dir / "dev.env", env)
        _say(f"starting the API on {settings.host}:{settings.port}")
        api = children["the API"] = spawn([sys.executable, "-m", "entrypoints.cli", "api"], env=env)
        base = f"http://{settings.host}:{settings.port}"
        if not _wait_ready(api, f"{base}/readyz"):
            _say("the API did not become ready; see its output above")
            return 1
        _say("starting the worker")
        metrics_port = settings.worker_metrics_port or settings.port + 1
        env["KEEL_WORKER_METRICS_PORT"] = str(metrics_port)
        children["the worker"] = spawn(WORKER, env=env)
        user = uuid.UUID(_kept(data_dir / "dev-user", str(uuid.uuid4())))
        token = issue_token(secret, settings.jwt_audience, user, "dev@keel.local", TOKEN_TTL_S)
        print(
            f"\nKeel is running.\n"
            f"  API       {base}\n"
            f"  API docs  {base}/schema/swagger\n"
            f"  Console   {base}/console\n"
            f"  Metrics   {base}/metrics (API)\n"
            f"            http://{settings.host}:{metrics_port}/metrics (worker)\n"
            f"  Token     user {user}, valid 24 h (`keel token --sub {user}` makes another)\n"
            f"  Env       set -a; . {data_dir / 'dev.env'}; set +a   (its URLs, for psql,"
            f" keel worker, keel doctor)\n"
            f"  Try       export TOKEN={token}\n"
            f'            curl -H "Authorization: Bearer $TOKEN" {base}/v1/me\n'
            f"Press Ctrl-C to stop.\n",
            flush=True,
        )
        return _watch(children, env, services)
    except StopSignalError as stopped:
        _say(f"{stopped}: stopping")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in reversed(children.values()):
            stop(child)
        for service in reversed(services):
            service.stop()
        lock.close()
        _say("stopped")


def _databases(
    settings: Settings, services: list[EmbeddedPostgres | EmbeddedRedis]
) -> dict[str, str]:
    """Start or reach Postgres, migrate it, and return the URLs the API needs."""
    if settings.database_url is not None:
        if settings.migration_database_url:
            _say("applying migrations")
            upgrade(settings.migration_database_url)
        else:
            _say("KEEL_MIGRATION_DATABASE_URL is unset: not applying migrations")
        return {}
    _say("starting embedded PostgreSQL")
    postgres = EmbeddedPostgres(settings.data_path)
    services.append(postgres)
    server = postgres.start()
    owner = with_database(server, DATABASE)
    asyncio.run(ensure_database(server, DATABASE))
    _say("applying migrations")
    upgrade(owner)
    asyncio.run(ensure_login_role(owner, RUNTIME_ROLE))
    asyncio.run(_install_statement_stats(owner))
    return {
        "KEEL_DATABASE_URL": with_user(owner, RUNTIME_ROLE),
        "KEEL_MIGRATION_DATABASE_URL": owner,
    }


def _write_env(path: Path, env: dict[str, str]) -> None:
    """The URLs and secret this keel dev uses, as shell `KEY=value` lines (mode 0600)."""
    if not path.exists():
        path.touch(mode=0o600)
    names = sorted(name for name in env if name.startswith("KEEL_") and name.endswith(_SHARED))
    path.write_text("".join(f"{name}={shlex.quote(env[name])}\n" for name in names))


def _watch(
    children: dict[str, subprocess.Popen[bytes]],
    env: dict[str, str],
    services: list[EmbeddedPostgres | EmbeddedRedis],
) -> int:
    """Wait until a child exits or a service dies (a signal ends the wait
    sooner); a worker killed by a signal is started again."""
    while True:
        worker = children["the worker"]
        if worker.poll() is not None and worker.returncode < 0:
            _say(f"the worker was killed ({-worker.returncode}); starting it again")
            children["the worker"] = spawn(WORKER, env=env)
        for name, child in children.items():
            if child.poll() is not None:
                _say(f"{name} exited with {child.returncode}")
                return child.returncode or 1
        for service in services:
            if (code := service.exit_code()) is not None:
                _say(f"{type(service).__name__} exited with {code}")
                return 1
        time.sleep(0.5)


async def _install_statement_stats(url: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        await install_statement_stats(engine)
    finally:
        await engine.dispose()


def _wait_ready(api: subprocess.Popen[bytes], url: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and api.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own URL
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    return False
