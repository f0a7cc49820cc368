"""Bootstrap for a fresh clone: needs only Python 3.11+.

    python3 tasks.py dev     create .venv, install Keel, run `keel dev`
    python3 tasks.py test    create .venv, install Keel with its dev tools, run
                             ruff, mypy, the import-layer contract and pytest
                             (extra arguments go to pytest)
    python3 tasks.py bench   create .venv with the dev tools, run `keel bench`
                             (extra arguments go to it; docs/bench.md)
    python3 tasks.py audit   the same environment, then `keel audit` (the red-team
                             audit; extra arguments go to it)

The virtual environment is rebuilt only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".keel-installed"


def _say(message: str) -> None:
    print(f"tasks.py: {message}", flush=True)


def _ensure_venv(extra: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Keel needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extra.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        _say(f"creating {VENV.relative_to(ROOT)}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    _say(f"installing Keel{extra} and its dependencies (a minute on a fresh machine)")
    subprocess.run(
        [BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True
    )
    subprocess.run(
        [BIN / "python", "-m", "pip", "install", "--quiet", "-e", f".{extra}"], check=True, cwd=ROOT
    )
    STAMP.write_text(wanted)


def _run(*args: str | Path) -> None:
    _say(" ".join(str(arg) for arg in args))
    result = subprocess.run([str(arg) for arg in args], cwd=ROOT, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def dev() -> None:
    _ensure_venv("")
    os.execv(BIN / "keel", [str(BIN / "keel"), "dev"])


def test(pytest_args: list[str]) -> None:
    _ensure_venv("[dev]")
    _run(BIN / "ruff", "check", ".")
    _run(BIN / "ruff", "format", "--check", ".")
    _run(BIN / "mypy")
    _run(BIN / "lint-imports")
    _run(BIN / "pytest", *pytest_args)


def bench(bench_args: list[str]) -> None:
    _ensure_venv("[dev]")  # the plot's matplotlib is a dev tool
    os.execv(BIN / "keel", [str(BIN / "keel"), "bench", *bench_args])


def audit(arguments: list[str]) -> None:
    _ensure_venv("[dev]")
    os.execv(BIN / "keel", [str(BIN / "keel"), "audit", *arguments])


if __name__ == "__main__":
    command, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if command == "dev":
        dev()
    elif command == "test":
        test(rest)
    elif command == "bench":
        bench(rest)
    elif command == "audit":
        audit(rest)
    else:
        sys.exit(__doc__)
