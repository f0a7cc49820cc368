"""`keel dev` end to end, as a user runs it: one command, then SIGTERM or a kill.

The command is started three times on one KEEL_DATA_DIR:

1. it prints a token; the API answers /readyz, /v1/me (as the token's user)
   and its OpenAPI schema; SIGTERM stops it with status 0 and leaves no
   PostgreSQL, Redis or API process behind;
2. it starts again (no stale lock) with the same dev user, and SIGKILL of
   `keel dev` itself takes its children down with it (PR_SET_PDEATHSIG);
3. it starts once more after that kill, with the data of the first run.

Only the environment a user would have: every KEEL_* variable is removed,
then KEEL_DATA_DIR and KEEL_PORT are set.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import jwt
import psutil
import pytest

from entrypoints.devstack.redis import EmbeddedRedis

pytestmark = pytest.mark.slow  # starts and kills `keel dev` and its children: `pytest -m slow`

STARTUP_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
TOKEN_PREFIX = "  Try       export TOKEN="
AUDIENCE = "authenticated"


def _keel() -> list[str]:
    script = Path(sys.executable).with_name("keel")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "entrypoints.cli"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _poll(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _access_lines(lines: list[str], route: str) -> list[dict[str, object]]:
    """The API's access-log lines for `route`: one JSON object per line."""
    found = []
    for line in list(lines):
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == "request" and entry.get("route") == route:
                found.append(entry)
    return found


def _alive(process: psutil.Process) -> bool:
    """Still running: neither gone, nor a zombie, nor a new process on a reused pid."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _mentioning(needles: Iterable[str]) -> list[psutil.Process]:
    """Live processes whose command line contains one of `needles`."""
    needles = [needle for needle in needles if needle]
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or ())
        if any(needle in command for needle in needles) and _alive(process):
            found.append(process)
    return found


def _described(processes: Iterable[psutil.Process]) -> str:
    lines = []
    for process in processes:
        try:
            lines.append(f"{process.pid} {process.status()} {' '.join(process.cmdline())}")
        except psutil.Error:
            lines.append(f"{process.pid} (gone)")
    return "\n".join(lines)


class DevRun:
    """One `keel dev` process, its output drained by a thread."""

    def __init__(self, data_dir: Path, cwd: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {name: value for name, value in os.environ.items() if not name.startswith("KEEL_")}
        env.update(KEEL_DATA_DIR=str(data_dir), KEEL_PORT=str(self.port), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [*_keel(), "dev"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
        self.lines: list[str] = []
        self.token: str | None = None
        self._banner = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.children: list[psutil.Process] = []

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if line.startswith(TOKEN_PREFIX):
                self.token = line.removeprefix(TOKEN_PREFIX).strip()
                self._banner.set()
        self._banner.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_output(self) -> None:
        """Wait until the process's output has been read to its end."""
        self._reader.join(10)

    def wait_banner(self) -> str:
        """The printed token, once the banner is out; fails with the output otherwise."""
        self._banner.wait(STARTUP_TIMEOUT_S)
        assert self.token, (
            f"`keel dev` printed no token within {STARTUP_TIMEOUT_S} s "
            f"(exit status {self.process.poll()}); its output:\n{self.output}"
        )
        self.children = psutil.Process(self.process.pid).children(recursive=True)
        return self.token

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(f"{self.base}{path}", headers=headers, timeout=10)

    def _refresh_children(self) -> None:
        """Add the children started since the banner (e.g. PostgreSQL backends)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            known = {child.pid for child in self.children}
            for child in psutil.Process(self.process.pid).children(recursive=True):
                if child.pid not in known:
                    self.children.append(child)

    def signal_and_wait(self, sig: int) -> int:
        self._refresh_children()
        self.process.send_signal(sig)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"`keel dev` did not exit within {STOP_TIMEOUT_S} s of {signal.Signals(sig).name};"
                f" its output:\n{self.output}"
            ) from None

    def kill_leftovers(self) -> None:
        if self.process.poll() is None:
            self._refresh_children()
            self.process.kill()
            self.process.wait(10)
        for child in self.children:
            if _alive(child):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()


def _user_of(token: str, data_dir: Path) -> uuid.UUID:
    """The token's subject, verified with the secret `keel dev` keeps in the data dir."""
    secret = (data_dir / "jwt-secret").read_text().strip()
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE)
    return uuid.UUID(claims["sub"])


def _check_children(run: DevRun) -> None:
    """The snapshot of `keel dev`'s children holds the three servers (it is checked later)."""
    commands = [" ".join(child.cmdline()) for child in run.children if _alive(child)]
    assert any("postgres -D " in command for command in commands), commands
    assert any("redis-server" in command for command in commands), commands
    assert any("entrypoints.cli api" in command for command in commands), commands


def _assert_all_gone(run: DevRun, needles: list[str], after: str) -> None:
    def gone() -> bool:
        return not any(_alive(child) for child in run.children) and not _mentioning(needles)

    assert _poll(gone, STOP_TIMEOUT_S), (
        f"processes left {STOP_TIMEOUT_S} s after {after}:\n"
        f"{_described([c for c in run.children if _alive(c)] + _mentioning(needles))}\n"
        f"`keel dev` output:\n{run.output}"
    )


def _cluster(data_dir: Path) -> Path | None:
    location = data_dir / "postgres-location.txt"
    if not location.exists():
        return None
    return Path(location.read_text().strip())


def test_keel_dev_starts_serves_stops_and_dies_with_its_children(tmp_path: Path) -> None:
    data_dir = (tmp_path / "keel data").resolve()
    redis_socket = EmbeddedRedis(data_dir).socket
    runs: list[DevRun] = []

    def start() -> tuple[DevRun, str]:
        run = DevRun(data_dir, cwd=tmp_path)
        runs.append(run)
        token = run.wait_banner()
        _check_children(run)
        return run, token

    def needles() -> list[str]:
        cluster = _cluster(data_dir) if os.geteuid() == 0 else None
        return [str(data_dir), str(redis_socket), str(cluster) if cluster else ""]

    try:
        # 1. First start: token, readiness, the token's user, the schema; then SIGTERM.
        first, token = start()
        user = _user_of(token, data_dir)
        assert f"user {user}, valid 24 h" in first.output
        assert first.get("/readyz").status_code == 200, first.output
        me = first.get("/v1/me", token)
        assert me.status_code == 200, me.text
        assert uuid.UUID(me.json()["id"]) == user
        assert _poll(lambda: _access_lines(first.lines, "/v1/me"), 10), first.output
        [line, *_] = _access_lines(first.lines, "/v1/me")
        assert (line["status"], line["user_id"]) == (200, str(user)), line
        assert line["request_id"] == me.headers["x-request-id"], line
        schema = first.get("/schema/openapi.json")
        assert schema.status_code == 200, schema.text
        assert "/v1/me" in schema.json()["paths"]
        if os.geteuid() == 0:
            cluster = _cluster(data_dir)
            assert cluster is not None, "postgres-location.txt was not written"
            assert cluster.is_dir()

        assert first.signal_and_wait(signal.SIGTERM) == 0, first.output
        assert "keel dev: stopped" in first.output
        _assert_all_gone(first, needles(), "SIGTERM")

        # 2. Same data dir: no stale lock, the same dev user; then SIGKILL `keel dev` only.
        second, token = start()
        assert _user_of(token, data_dir) == user
        assert second.get("/readyz").status_code == 200, second.output
        # A second `keel dev` on the same data dir refuses, and leaves the first alone.
        intruder = DevRun(data_dir, cwd=tmp_path)
        runs.append(intruder)
        assert intruder.process.wait(30) == 1
        intruder.wait_output()
        assert "already using" in intruder.output
        assert second.get("/readyz").status_code == 200, second.output
        assert second.signal_and_wait(signal.SIGKILL) == -signal.SIGKILL
        _assert_all_gone(second, needles(), "SIGKILL of `keel dev`")

        # 3. After the kill: it starts again, with the first run's data.
        third, token = start()
        assert _user_of(token, data_dir) == user
        assert third.get("/readyz").status_code == 200, third.output
        again = third.get("/v1/me", token)
        assert again.status_code == 200, again.text
        assert again.json()["created_at"] == me.json()["created_at"]
        assert third.signal_and_wait(signal.SIGTERM) == 0, third.output
        _assert_all_gone(third, needles(), "SIGTERM")
    finally:
        for run in runs:
            run.kill_leftovers()
        for leftover in _mentioning(needles()):
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
        _poll(
            lambda: (
                not any(_alive(c) for run in runs for c in run.children)
                and not _mentioning(needles())
            ),
            10,
        )
        cluster = _cluster(data_dir)
        if cluster is not None and cluster.parent.name == "clusters":
            shutil.rmtree(cluster, ignore_errors=True)
        if not redis_socket.is_relative_to(data_dir):
            shutil.rmtree(redis_socket.parent, ignore_errors=True)
