"""docs/VERIFY.md, run as a person would: `keel dev` started as the guide's
console line says, then every `sh` block in order in one shell; what each
block prints must show the lines of the `text` block under it, in order
(`…` matches anything). About 25 s: it is in the README's test command, as
the guide is part of what a fresh clone must pass."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from entrypoints.devstack.process import spawn

pytestmark = pytest.mark.slow  # runs the whole verification guide: `pytest -m slow`

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "VERIFY.md"
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    return _BLOCK.findall(GUIDE.read_text())


def _start_variables() -> dict[str, str]:
    """The KEEL_* assignments of the guide's first console line (`keel dev`)."""
    console = next(body for kind, body in _blocks() if kind == "console")
    words = shlex.split(console)
    return dict(word.split("=", 1) for word in words if re.match(r"KEEL_\w+=", word))


def _steps() -> list[tuple[str, list[str]]]:
    blocks, steps = _blocks(), []
    for i, (kind, body) in enumerate(blocks):
        if kind == "sh":
            after = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
            expected = after[1].splitlines() if after[0] == "text" else []
            steps.append((body, [line for line in expected if line.strip()]))
    return steps


def _shows(output: str, expected: list[str]) -> bool:
    lines = iter(output.splitlines())
    for want in expected:
        pattern = re.compile(".*".join(re.escape(part) for part in want.split("…")))
        if not any(pattern.fullmatch(line) for line in lines):
            return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_verification_guide_holds(tmp_path: Path) -> None:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("KEEL_")}
    env.update(_start_variables(), KEEL_DATA_DIR=str(tmp_path / "keel"), KEEL_PORT=str(port))
    env["KEEL_WORKER_METRICS_PORT"] = str(_free_port())
    log = tmp_path / "keel-dev.log"
    dev = spawn([sys.executable, "-m", "entrypoints.cli", "dev"], env=env, log=log, cwd=ROOT)
    try:
        deadline = time.monotonic() + 180
        while "Keel is running" not in log.read_text():
            assert dev.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        steps = _steps()
        script = tmp_path / "guide.sh"
        script.write_text(
            "set -o pipefail\n"
            + "".join(f"echo '<<<step {n}>>>'\n{body}\n" for n, (body, _) in enumerate(steps))
            + "echo '<<<done>>>'\n"
        )
        ran = subprocess.run(
            ["bash", str(script)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        outputs = re.split(r"^<<<step \d+>>>$", ran.stdout, flags=re.MULTILINE)[1:]
        assert ran.stdout.rstrip().endswith("<<<done>>>"), ran.stdout + ran.stderr
        for n, ((body, expected), output) in enumerate(zip(steps, outputs, strict=True)):
            shown = output.replace("<<<done>>>", "")
            assert _shows(shown, expected), f"step {n}:\n{body}\nprinted:\n{shown}\n{ran.stderr}"
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dev.kill()
