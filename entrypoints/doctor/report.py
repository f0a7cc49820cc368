"""What `keel doctor` found: one line per check, `ok` / `warn` / `fail`, each
with one sentence of why and how to fix it; `--json` for machines."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import msgspec


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


class Check(msgspec.Struct, frozen=True):
    name: str
    status: Status
    message: str


def ok(name: str, message: str) -> Check:
    return Check(name, Status.OK, message)


def warn(name: str, message: str) -> Check:
    return Check(name, Status.WARN, message)


def fail(name: str, message: str) -> Check:
    return Check(name, Status.FAIL, message)


def as_text(checks: Sequence[Check]) -> str:
    return "\n".join(f"{c.status.value:<4}  {c.name}: {c.message}" for c in checks)


def as_json(checks: Sequence[Check]) -> str:
    failed = any(c.status is Status.FAIL for c in checks)
    return msgspec.json.encode({"ok": not failed, "checks": list(checks)}).decode()


def exit_code(checks: Sequence[Check]) -> int:
    """1 on any `fail`; warnings alone leave it 0."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0
