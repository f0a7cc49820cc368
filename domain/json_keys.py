"""One key once per JSON object: a body, a UI-state value or a `contains`
filter that names a key twice is refused (SECURITY.md, "Keel's JSON").

RFC 8259 leaves duplicate keys to the reader: msgspec (Keel's decoder) and
Python keep the last value, other readers the first or an error. A proxy, a
log or an audit trail that reads the first value would see another request
than Keel runs (`{"title": "ok", "title": "<script>"}`). No JSON library Keel
uses refuses them, so the standard library's decoder is asked for each
object's pairs; the walk that names the keys by JSON Pointer runs only when
one was duplicated.
"""

from __future__ import annotations

import json
from typing import Any

from domain.json_values import MAX_PROBLEMS, FieldProblem, pointer_token

TWICE = "is given more than once in one object"


class _Twice(dict[str, Any]):
    """An object that named the keys in `twice` more than once."""

    twice: list[str]


def duplicate_keys(text: bytes | str, source: str = "body", at: str = "") -> list[FieldProblem]:
    """Every key given twice in one object of the JSON `text`, named by its JSON
    Pointer; none for text that is not JSON (the caller's decoder says why)."""
    found: list[bool] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        value = dict(items)
        if len(value) == len(items):
            return value
        twice = _Twice(value)
        twice.twice = []
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and key not in twice.twice:
                twice.twice.append(key)
            seen.add(key)
        found.append(True)
        return twice

    try:
        value = json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return []
    if not found:
        return []
    problems: list[FieldProblem] = []
    stack: list[tuple[str, Any]] = [(at, value)]
    while stack and len(problems) < MAX_PROBLEMS:
        pointer, node = stack.pop()
        if isinstance(node, _Twice):
            problems += [
                FieldProblem(f"{pointer}/{pointer_token(key)}", TWICE, source) for key in node.twice
            ]
        if isinstance(node, dict):
            stack += [(f"{pointer}/{pointer_token(k)}", v) for k, v in node.items()]
        elif isinstance(node, list):
            stack += [(f"{pointer}/{index}", v) for index, v in enumerate(node)]
    return problems[:MAX_PROBLEMS]
