"""Keel's JSON: the values Keel takes, stores and serves (SECURITY.md, "Keel's JSON").

A JSON value Keel accepts, anywhere (a body field, a UI-state value, a
`contains` filter), is one that every part of Keel and its clients can carry:

- numbers are finite and lie in -(2**53 - 1) .. 2**53 - 1, integers and
  fractions alike: the range a JavaScript client reads exactly, and one that
  Postgres, msgpack and the JSON encoders all round-trip (Postgres prints a
  float such as 1e20 as the integer 100000000000000000000, so floats need the
  bound as much as integers do);
- strings and object keys hold no NUL (Postgres text and JSONB cannot) and no
  lone surrogate (UTF-8 cannot);
- arrays and objects nest at most MAX_DEPTH deep (`{"a": [1]}` is 2 deep).

`inspect` is one iterative walk (no recursion, whatever the depth) that finds
every problem, named by its JSON Pointer (RFC 6901), and measures the value
in the unit it is stored in: the bytes of the text Postgres prints for it as
JSONB (`octet_length(value::jsonb::text)`), which spaces its separators and
writes numbers in full.

Hand-written because the limits are Keel's, and the size has to be the one
Postgres stores: no JSON library measures that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

MAX_DEPTH = 32
MAX_SAFE_INTEGER = 2**53 - 1
MAX_PROBLEMS = 20

_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")
_ESCAPED = re.compile(r'[\x00-\x1f"\\]')
_SHORT_ESCAPES = frozenset('\b\f\n\r\t"\\')


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One bad field: where it is (a JSON Pointer into a body, or a query
    parameter's or header's name), what is wrong, and in which part of the request."""

    key: str
    message: str
    source: str = "body"


@dataclass(frozen=True, slots=True)
class Inspection:
    problems: list[FieldProblem]
    stored_bytes: int


def pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored as text, or None when it can."""
    found = _UNSAFE_TEXT.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000)"
    return "contains a lone surrogate (not Unicode text)"


def _string_bytes(text: str) -> int:
    size = len(text.encode("utf-8", "surrogatepass")) + 2
    for found in _ESCAPED.finditer(text):
        size += 1 if found.group() in _SHORT_ESCAPES else 5
    return size


def _number_problem(number: float) -> str | None:
    if number != number or number in (float("inf"), float("-inf")):
        return "is not finite"
    if abs(number) > MAX_SAFE_INTEGER:
        return f"is outside -{MAX_SAFE_INTEGER}..{MAX_SAFE_INTEGER} (send larger ones as strings)"
    return None


def _float_bytes(number: float) -> int:
    # Postgres stores the digits json.dumps sends (repr) as numeric and prints
    # them without an exponent (1e-07 becomes 0.0000001) and without the sign
    # of a zero.
    if number != number or number in (float("inf"), float("-inf")):
        return len(repr(number))
    return len(format(Decimal(repr(abs(number) if number == 0 else number)), "f"))


def inspect(value: object, at: str = "", source: str = "body") -> Inspection:
    """Every problem of `value` (at most MAX_PROBLEMS), and its stored size in bytes."""
    problems: list[FieldProblem] = []
    size = 0
    # (value, its pointer's parent, its key or None for the root, its depth)
    stack: list[tuple[object, str, str | None, int]] = [(value, at, None, 0)]

    def where(parent: str, key: str | None) -> str:
        return parent if key is None else f"{parent}/{pointer_token(key)}"

    while stack and len(problems) < MAX_PROBLEMS:
        item, parent, key, depth = stack.pop()
        if isinstance(item, str):
            size += _string_bytes(item)
            if why := text_problem(item):
                problems.append(FieldProblem(where(parent, key), f"a string {why}", source))
        elif item is None or isinstance(item, bool):
            size += 4 if item is not False else 5
        elif isinstance(item, int | float):
            if why := _number_problem(item):
                # (not measured: str() refuses integers of over 4,300 digits)
                problems.append(FieldProblem(where(parent, key), f"a number {why}", source))
            else:
                size += len(str(item)) if isinstance(item, int) else _float_bytes(item)
        elif isinstance(item, dict | list):
            here = where(parent, key)
            if depth + 1 > MAX_DEPTH:
                problems.append(
                    FieldProblem(here, f"arrays and objects nest at most {MAX_DEPTH} deep", source)
                )
                continue
            size += 2 + 2 * max(len(item) - 1, 0)
            if isinstance(item, list):
                stack.extend((child, here, str(n), depth + 1) for n, child in enumerate(item))
                continue
            for name, child in item.items():
                if not isinstance(name, str):
                    problems.append(FieldProblem(here, "object keys are strings", source))
                    continue
                size += _string_bytes(name) + 2
                if why := text_problem(name):
                    problems.append(FieldProblem(where(here, name), f"a key {why}", source))
                stack.append((child, here, name, depth + 1))
        else:
            problems.append(
                FieldProblem(where(parent, key), f"{type(item).__name__} is not JSON", source)
            )
    return Inspection(problems, size)
