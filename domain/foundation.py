"""Rules for foundation documents: what a valid kind, title, content and tag set is."""

from __future__ import annotations

import re
from typing import Any

from domain.entities import FoundationChanges
from domain.errors import InvalidFieldsError, InvalidInputError
from domain.json_values import FieldProblem, inspect

MAX_CONTENT_BYTES = 256 * 1024  # as stored: octet_length(content::text), a check in the schema
MAX_VERSION = 2**31 - 1  # versions are Postgres integers
MAX_TAGS = 50
MAX_TAG_LENGTH = 64
MAX_TITLE_LENGTH = 300
KIND = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def check_kind(kind: str) -> str:
    # fullmatch: `$` in a `match` would also accept a trailing newline.
    if not KIND.fullmatch(kind):
        raise InvalidFieldsError(
            [
                FieldProblem(
                    "/kind",
                    "is 1 to 64 characters: a lower-case letter, then letters, digits, . _ -",
                )
            ]
        )
    return kind


def check_title(title: str) -> str:
    title = title.strip()
    if not 1 <= len(title) <= MAX_TITLE_LENGTH:
        raise InvalidInputError(f"title must be 1 to {MAX_TITLE_LENGTH} characters")
    return title


def check_content(content: dict[str, Any]) -> dict[str, Any]:
    """Keel's JSON, at most MAX_CONTENT_BYTES as Postgres stores it."""
    found = inspect(content, "/content")
    if found.problems:
        raise InvalidFieldsError(found.problems)
    if found.stored_bytes > MAX_CONTENT_BYTES:
        raise InvalidFieldsError(
            [
                FieldProblem(
                    "/content",
                    f"is {found.stored_bytes} bytes as stored (JSONB text);"
                    f" at most {MAX_CONTENT_BYTES} are allowed",
                )
            ]
        )
    return content


def check_tags(tags: list[str]) -> list[str]:
    """Tags trimmed, de-duplicated (first occurrence wins), and bounded."""
    cleaned = list(dict.fromkeys(tag.strip() for tag in tags))
    if len(cleaned) > MAX_TAGS:
        raise InvalidInputError(f"at most {MAX_TAGS} tags are allowed")
    if any(not 1 <= len(tag) <= MAX_TAG_LENGTH for tag in cleaned):
        raise InvalidInputError(f"each tag must be 1 to {MAX_TAG_LENGTH} characters")
    return cleaned


def check_changes(changes: FoundationChanges) -> FoundationChanges:
    if not changes.as_dict():
        raise InvalidInputError("nothing to change: give kind, title, content or tags")
    return FoundationChanges(
        kind=None if changes.kind is None else check_kind(changes.kind),
        title=None if changes.title is None else check_title(changes.title),
        content=None if changes.content is None else check_content(changes.content),
        tags=None if changes.tags is None else check_tags(changes.tags),
    )


def check_filter_text(value: str, name: str) -> str:
    """Text that goes into a query: Postgres text cannot hold NUL characters."""
    if "\x00" in value:
        raise InvalidInputError(f"{name} cannot contain NUL characters")
    return value
