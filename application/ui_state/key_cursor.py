"""The cursor of a page of UI-state keys: the last key of the page, base64url."""

from __future__ import annotations

import base64
import binascii

from domain.errors import InvalidInputError
from domain.ui_state import check_key


def encode_key_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()


def decode_key_cursor(cursor: str | None) -> str | None:
    """Raises InvalidInputError for a cursor this service did not issue."""
    if cursor is None:
        return None
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return check_key(key)
    except (ValueError, binascii.Error, InvalidInputError):
        raise InvalidInputError("cursor is not one this service issued") from None
