"""A PgBouncer of the test session's own, in transaction mode, in front of its Postgres.

Debian's `pgbouncer` binary (apt-get install pgbouncer; .ci/run installs it),
started in the foreground on a free loopback port below 50000, never the
system service. `auth_type = trust` with the runtime and owner roles in its
auth_file (trust still wants the names there): the test Postgres trusts
local connections, so PgBouncer logs in as the client's own role and
row-level security sees the same role as without it. PgBouncer refuses to
run as root, so as root it runs as the embedded Postgres's system user,
which can also reach that server's 0700 socket folder.
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from entrypoints.devstack.postgres import SYSTEM_USER
from entrypoints.devstack.process import spawn, stop

BINARY = "pgbouncer"


@dataclass(frozen=True)
class Pooler:
    host: str
    port: int
    log: Path

    def url(self, direct_url: str) -> str:
        """`direct_url` (same role, password and database) through this PgBouncer."""
        parsed = make_url(direct_url).set(host=self.host, port=self.port)
        query = {key: value for key, value in parsed.query.items() if key != "host"}
        return parsed.set(query=query).render_as_string(hide_password=False)


def installed() -> bool:
    return shutil.which(BINARY) is not None or Path("/usr/sbin/pgbouncer").exists()


def _binary() -> str:
    return shutil.which(BINARY) or "/usr/sbin/pgbouncer"


def free_port() -> int:
    """A free loopback port below 50000."""
    for _ in range(200):
        port = random.randint(20_000, 49_999)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below 50000")


def _server(server_url: str) -> tuple[str, int]:
    """Host (or socket folder) and port of the Postgres behind `server_url`."""
    parsed = make_url(server_url)
    host = parsed.query.get("host") or parsed.host or "127.0.0.1"
    return str(host if isinstance(host, str) else host[0]), parsed.port or 5432


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in (SYSTEM_USER, "postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no user to run PgBouncer as")


def _config(
    folder: Path, server_url: str, port: int, pool_size: int, query_wait_timeout_s: int
) -> str:
    host, server_port = _server(server_url)
    return f"""
[databases]
* = host={host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
max_db_connections = {pool_size}
query_wait_timeout = {query_wait_timeout_s}
logfile = {folder / "pgbouncer.log"}
"""


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("pgbouncer did not listen within 20 s")


@contextmanager
def running_pooler(
    server_url: str, users: Sequence[str], *, pool_size: int = 2, query_wait_timeout_s: int = 30
) -> Iterator[Pooler]:
    """PgBouncer in transaction mode with `pool_size` server connections per
    database, letting in `users` (trust), stopped after. A client waits at
    most `query_wait_timeout_s` for a server connection (PgBouncer's default: 120)."""
    folder = Path(tempfile.mkdtemp(prefix="keel-pooler-"))
    port = free_port()
    user = _run_as()
    try:
        (folder / "users.txt").write_text("".join(f'"{name}" ""\n' for name in users))
        (folder / "pgbouncer.ini").write_text(
            _config(folder, server_url, port, pool_size, query_wait_timeout_s)
        )
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (folder, *folder.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        log = folder / "pgbouncer.log"
        process = spawn([_binary(), folder / "pgbouncer.ini"], user=user, log=folder / "out.log")
        try:
            _wait_ready(process, port, log)
            yield Pooler("127.0.0.1", port, log)
        finally:
            stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
