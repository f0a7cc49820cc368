"""Keyset pagination: an opaque cursor wrapping the last id of a page."""

import base64
import binascii
from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from domain.entities import Page
from domain.errors import InvalidInputError

T = TypeVar("T")

MAX_LIMIT = 100
DEFAULT_LIMIT = 50


def encode_cursor(last: UUID) -> str:
    return base64.urlsafe_b64encode(last.bytes).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> UUID | None:
    """Raises InvalidInputError for a cursor this service did not issue."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return UUID(bytes=raw)
    except (ValueError, binascii.Error):
        raise InvalidInputError("cursor is not one this service issued") from None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def make_page(rows: list[T], limit: int, key: Callable[[T], UUID]) -> Page[T]:
    """Build a page from up to `limit + 1` rows: the extra row means there is more."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(items=rows, next_cursor=encode_cursor(key(rows[-1])))
    return Page(items=rows, next_cursor=None)
