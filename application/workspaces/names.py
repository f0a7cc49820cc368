"""A workspace's name, as creating and renaming accept it."""

from __future__ import annotations

from domain.errors import InvalidInputError

MAX_NAME_LENGTH = 200


def clean_name(name: str) -> str:
    """A workspace name: 1 to 200 characters once surrounding spaces are trimmed."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidInputError(f"name must be 1 to {MAX_NAME_LENGTH} characters")
    return name
