"""application/pagination.py: opaque cursors, limits and pages."""

from __future__ import annotations

import base64
import re
import uuid
from uuid import UUID

import pytest

from application.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    check_limit,
    decode_cursor,
    encode_cursor,
    make_page,
)
from domain.entities import Page
from domain.errors import InvalidInputError

SAMPLE_IDS = [
    UUID(int=0),
    UUID(int=2**128 - 1),
    UUID("0192f0c8-7b3a-7cc3-9a51-3f1d2b6e8f00"),  # a UUIDv7
    UUID("fbfbfbfb-ffff-ffff-fbfb-fbfbfbfbfbfb"),  # bytes that need '-' and '_' in base64url
]


@pytest.mark.parametrize("value", SAMPLE_IDS, ids=str)
def test_cursor_round_trips(value: UUID) -> None:
    assert decode_cursor(encode_cursor(value)) == value


@pytest.mark.parametrize("value", SAMPLE_IDS, ids=str)
def test_cursor_is_url_safe_and_unpadded(value: UUID) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", encode_cursor(value))


def test_cursor_does_not_spell_out_the_uuid() -> None:
    value = uuid.uuid4()
    cursor = encode_cursor(value)
    assert str(value) not in cursor
    assert value.hex not in cursor


def test_distinct_ids_give_distinct_cursors() -> None:
    ids = [uuid.uuid4() for _ in range(50)]
    assert len({encode_cursor(value) for value in ids}) == 50


def test_no_cursor_means_from_the_start() -> None:
    assert decode_cursor(None) is None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("", id="empty"),
        pytest.param("not a cursor!", id="not base64"),
        pytest.param("A", id="one character"),
        pytest.param("A" * 21, id="21 characters: impossible length"),
        pytest.param(_b64(bytes(15)), id="15 bytes"),
        pytest.param(_b64(bytes(17)), id="17 bytes"),
        pytest.param(str(UUID(int=7)), id="a UUID spelled out"),
        pytest.param("é" * 22, id="non-ascii"),
    ],
)
def test_a_cursor_this_service_did_not_issue_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInputError, match="cursor"):
        decode_cursor(cursor)


@pytest.mark.parametrize("limit", [1, 2, DEFAULT_LIMIT, MAX_LIMIT])
def test_limits_in_bounds_pass_through(limit: int) -> None:
    assert check_limit(limit) == limit


@pytest.mark.parametrize("limit", [-1, 0, MAX_LIMIT + 1, 10_000])
def test_limits_out_of_bounds_are_invalid_input(limit: int) -> None:
    with pytest.raises(InvalidInputError, match=f"between 1 and {MAX_LIMIT}"):
        check_limit(limit)


def test_limit_constants() -> None:
    assert MAX_LIMIT == 100
    assert 1 <= DEFAULT_LIMIT <= MAX_LIMIT


def _key(value: UUID) -> UUID:
    return value


IDS = sorted(uuid.uuid4() for _ in range(7))


def test_fewer_rows_than_the_limit_is_the_last_page() -> None:
    page = make_page(IDS[:3], 5, _key)
    assert page.items == IDS[:3]
    assert page.next_cursor is None


def test_exactly_limit_rows_is_the_last_page() -> None:
    page = make_page(IDS[:5], 5, _key)
    assert page.items == IDS[:5]
    assert page.next_cursor is None


def test_no_rows_is_an_empty_last_page() -> None:
    page: Page[UUID] = make_page([], 5, _key)
    assert page.items == []
    assert page.next_cursor is None


def test_the_extra_row_is_dropped_and_the_cursor_points_at_the_last_item_shown() -> None:
    page = make_page(IDS[:6], 5, _key)
    assert page.items == IDS[:5]
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor) == IDS[4]


def test_the_cursor_uses_the_key_function() -> None:
    rows = [("a", IDS[0]), ("b", IDS[1]), ("c", IDS[2])]
    page = make_page(rows, 2, lambda row: row[1])
    assert page.items == rows[:2]
    assert page.next_cursor == encode_cursor(IDS[1])


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 8])
def test_walking_the_pages_sees_every_row_once_in_order(limit: int) -> None:
    """Simulate a repository: rows after the cursor, `limit + 1` of them."""
    seen: list[UUID] = []
    cursor: str | None = None
    for _ in range(len(IDS) + 1):
        after = decode_cursor(cursor)
        rows = [value for value in IDS if after is None or value > after][: limit + 1]
        page = make_page(rows, limit, _key)
        assert len(page.items) <= limit
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == IDS
