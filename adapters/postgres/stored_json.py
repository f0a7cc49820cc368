"""JSONB as the driver hands it to Keel: a value that cannot be decoded does
not fail the whole fetch.

Rows written before Keel's JSON was enforced, or by hand, may hold numbers
with more digits than Python reads (4300) or nesting deeper than its decoder
follows. Raising in the driver's decoder would fail every row of the fetch
with an error that names none of them; instead such a value decodes to an
`Unreadable` marker, and the row's mapping (`readable`) turns it into an
UnreadableValueError that names the row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from domain.errors import UnreadableValueError


@dataclass(frozen=True, slots=True)
class Unreadable:
    reason: str


def decode(text: str) -> Any:
    """The engine's JSON deserializer."""
    try:
        return json.loads(text)
    except RecursionError:
        return Unreadable("is nested too deeply to decode")
    except ValueError as error:
        return Unreadable(f"cannot be decoded ({error})")


def readable(value: Any, what: str) -> Any:
    """`value`, or UnreadableValueError saying which stored value (`what`) cannot be read."""
    if isinstance(value, Unreadable):
        raise UnreadableValueError(f"{what} {value.reason}")
    return value
