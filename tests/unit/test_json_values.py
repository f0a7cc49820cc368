"""Keel's JSON (domain/json_values.py): what the walk refuses, and how it names it."""

from __future__ import annotations

from typing import Any

import pytest

from domain.json_values import MAX_DEPTH, MAX_PROBLEMS, MAX_SAFE_INTEGER, inspect


def _keys(value: Any, at: str = "") -> list[str]:
    return sorted(problem.key for problem in inspect(value, at).problems)


def test_pointers_escape_tilde_and_slash_and_start_at_the_field() -> None:
    value = {"a/b": {"c~d": ["ok", "\x00"]}, "e": 2**60}
    assert _keys(value, "/content") == ["/content/a~1b/c~0d/1", "/content/e"]


@pytest.mark.parametrize(
    "value",
    [
        MAX_SAFE_INTEGER + 1,
        -MAX_SAFE_INTEGER - 1,
        10**400,
        1e20,
        float("inf"),
        float("-inf"),
        float("nan"),
        "\x00",
        "\ud800",
        {"\x00": 1},
        {1: "a non-string key"},
        b"bytes",
        {"a set"},
    ],
)
def test_values_outside_keels_json_are_named(value: Any) -> None:
    (key,) = _keys([value])
    assert key.startswith("/0")


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0.1, 5e-324, "é🙂\n", None])
def test_values_inside_are_not(value: Any) -> None:
    assert inspect([value]).problems == []


def test_an_integer_too_long_to_print_is_named_not_a_crash() -> None:
    assert _keys({"n": -(10**5000)}) == ["/n"]


def test_depth_is_counted_from_the_value_and_reported_once_per_branch() -> None:
    def nested(depth: int) -> Any:
        value: list[Any] = []
        for _ in range(depth - 1):
            value = [value]
        return value

    assert inspect(nested(MAX_DEPTH)).problems == []
    assert len(inspect({"a": nested(MAX_DEPTH), "b": nested(MAX_DEPTH)}).problems) == 2
    assert len(inspect(nested(100_000)).problems) == 1  # no recursion, whatever the depth


def test_at_most_max_problems_are_reported() -> None:
    assert len(inspect(["\x00"] * 1000).problems) == MAX_PROBLEMS


def test_the_size_is_postgres_text_not_compact_json() -> None:
    value = {"a": [1, 2], "b": 1e-7}
    assert inspect(value).stored_bytes == len('{"a": [1, 2], "b": 0.0000001}')
