"""Rules for task requests: what each kind takes, and what makes two requests the same."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from domain.entities import TaskKind
from domain.errors import InvalidInputError

MAX_PROMPT = 20_000
MAX_TEXT = 100_000
MAX_KEY = 200


def check_input(kind: TaskKind, data: dict[str, Any]) -> dict[str, Any]:
    """The input of a `kind` task, with defaults filled in; InvalidInputError otherwise."""
    if kind is TaskKind.GENERATE:
        _only(data, {"prompt", "use_foundation"})
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not 1 <= len(prompt.strip()) <= MAX_PROMPT:
            raise InvalidInputError(f"input.prompt must be text of 1 to {MAX_PROMPT} characters")
        use_foundation = data.get("use_foundation", True)
        if not isinstance(use_foundation, bool):
            raise InvalidInputError("input.use_foundation must be true or false")
        return {"prompt": prompt, "use_foundation": use_foundation}
    _only(data, {"text"})
    text = data.get("text")
    if not isinstance(text, str) or not 1 <= len(text.strip()) <= MAX_TEXT:
        raise InvalidInputError(f"input.text must be text of 1 to {MAX_TEXT} characters")
    return {"text": text}


def _only(data: dict[str, Any], allowed: set[str]) -> None:
    if unknown := set(data) - allowed:
        raise InvalidInputError(f"input has unknown fields: {', '.join(sorted(unknown))}")


def check_key(key: str | None) -> str | None:
    if key is not None and not 1 <= len(key) <= MAX_KEY:
        raise InvalidInputError(f"Idempotency-Key must be 1 to {MAX_KEY} characters")
    return key


def request_hash(kind: TaskKind, data: dict[str, Any], priority: int, max_attempts: int) -> str:
    """Equal for requests that mean the same task (key order does not matter)."""
    canonical = json.dumps(
        {"kind": kind.value, "input": data, "priority": priority, "max_attempts": max_attempts},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
