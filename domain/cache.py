"""Cache keys that cannot exist without a tenant.

A key is built only from a workspace id, a namespace and a name; the cache
invalidates per (workspace, namespace). Keys never hold user-typed text
that could break out of their pattern: names are UUIDs or fixed words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

T = TypeVar("T")

_PART = re.compile(r"^[a-z0-9-]{1,64}$")


@dataclass(frozen=True, slots=True)
class CacheKey:
    workspace_id: UUID
    namespace: str
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.workspace_id, UUID):
            raise TypeError("a cache key needs the workspace's UUID")
        for part in (self.namespace, self.name):
            if not _PART.match(part):
                raise ValueError(f"cache key part {part!r} must match {_PART.pattern}")


def member_key(workspace_id: UUID, user_id: UUID) -> CacheKey:
    return CacheKey(workspace_id, MEMBERS, str(user_id))


def document_key(workspace_id: UUID, document_id: UUID) -> CacheKey:
    return CacheKey(workspace_id, FOUNDATION, str(document_id))


def bundle_key(workspace_id: UUID) -> CacheKey:
    return CacheKey(workspace_id, FOUNDATION, "bundle")


MEMBERS = "members"
FOUNDATION = "foundation"


@dataclass(frozen=True, slots=True)
class Hit(Generic[T]):
    """A value found in the cache; `value` None is a cached "not found"."""

    value: T | None
