"""Per-user transient UI state (open panels, drafts, filters): an entry, and its rules.

A key is 1 to 128 characters of `A-Z a-z 0-9 . _ : -`, so it can never break
out of the storage key it is placed in (no glob characters, hash-tag braces,
spaces or control characters). A value is one JSON document of at most
64 KiB within Keel's JSON, kept exactly as sent. Every entry lives from 1 second to 30 days
(7 by default), and a user keeps at most 1000 live keys per workspace.

Workspaces are many, so a user's UI state is also bounded across all of
them (UIStateQuota): in entries, and in bytes charged per entry (its value,
its key, and ENTRY_OVERHEAD_BYTES for what the store keeps around it).
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn
from uuid import UUID

from domain.errors import InvalidFieldsError, InvalidInputError
from domain.json_keys import duplicate_keys
from domain.json_values import inspect

KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_VALUE_BYTES = 64 * 1024
DEFAULT_TTL_S = 7 * 24 * 3600
MAX_TTL_S = 30 * 24 * 3600
MAX_KEYS = 1000
WRITING = "writing UI state"  # what a refused write names; writing needs member
# Redis' own cost of an entry beyond its value and key: the key objects and
# expiry of the entry, its members in the indexes and the size ledger.
ENTRY_OVERHEAD_BYTES = 256


@dataclass(frozen=True, slots=True)
class UIStateQuota:
    keys_per_workspace: int = MAX_KEYS
    entries_per_user: int = 5000
    bytes_per_user: int = 8 * 1024 * 1024


DEFAULT_QUOTA = UIStateQuota()


class Refusal(enum.Enum):
    """Why a store refused to keep an entry."""

    WORKSPACE_KEYS = "workspace keys"
    USER_ENTRIES = "user entries"
    USER_BYTES = "user bytes"


@dataclass(frozen=True, slots=True)
class UIState:
    workspace_id: UUID
    user_id: UUID
    key: str
    value: bytes  # the JSON document exactly as the client sent it
    expires_at: datetime


def charge(state: UIState) -> int:
    """The bytes an entry counts against its user's quota."""
    return len(state.value) + len(state.key.encode()) + ENTRY_OVERHEAD_BYTES


def check_key(key: str) -> str:
    # fullmatch: `$` in a `match` would also accept a trailing newline.
    if not KEY.fullmatch(key):
        raise InvalidInputError(
            "a UI-state key is 1 to 128 characters: letters, digits and . _ : -"
        )
    return key


def check_ttl(ttl_s: int | None) -> int:
    """The lifetime in seconds: `ttl_s`, or the default when None."""
    if ttl_s is None:
        return DEFAULT_TTL_S
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise InvalidInputError(f"ttl must be between 1 and {MAX_TTL_S} seconds (30 days)")
    return ttl_s


def _not_a_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def check_value(value: bytes) -> bytes:
    """One JSON document in UTF-8 (NaN and Infinity are not JSON), at most 64 KiB,
    within Keel's JSON (domain/json_values.py), no key twice in an object."""
    if len(value) > MAX_VALUE_BYTES:
        raise InvalidInputError(
            f"the value is {len(value)} bytes; at most {MAX_VALUE_BYTES} are allowed"
        )
    try:
        parsed = json.loads(value.decode(), parse_constant=_not_a_constant)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidInputError("the body must be one JSON value in UTF-8") from None
    except RecursionError:
        raise InvalidInputError("the JSON value is nested too deeply") from None
    if problems := inspect(parsed).problems or duplicate_keys(value):
        raise InvalidFieldsError(problems)
    return value
