"""Child processes that cannot outlive the process that started them.

Linux delivers PR_SET_PDEATHSIG's signal to a child when the thread that
started it dies, even by SIGKILL: no orphaned servers, no stale lock on the
next start. Start children from the main thread only.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1
_LINUX = sys.platform == "linux"


def _die_with_parent(sig: int, parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # the parent died between fork and prctl
        os.kill(os.getpid(), sig)


def spawn(
    args: Sequence[str | Path],
    *,
    death_signal: int = signal.SIGTERM,
    user: str | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `args` in its own session; it receives `death_signal` if we die first.

    Its own session keeps a terminal's Ctrl-C away from it, so that the
    parent stops its children in order.
    """
    parent = os.getpid()
    output = None
    if log is not None:
        output = os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    try:
        return subprocess.Popen(
            [str(arg) for arg in args],
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            stdin=subprocess.DEVNULL,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=(lambda: _die_with_parent(death_signal, parent)) if _LINUX else None,
        )
    finally:
        if output:
            output.close()


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Ask `process` to stop with `sig`; kill it if it has not within `timeout`."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def running(pid: int) -> psutil.Process | None:
    """The live (not zombie) process `pid`, or None."""
    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process
    except psutil.NoSuchProcess:
        return None
