"""The shared cache, per tenant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar
from uuid import UUID

from domain.cache import CacheKey, Hit

T = TypeVar("T")


class Cache(Protocol):
    """Cache-aside over a shared store, per tenant.

    `get_or_set` never raises for the store's sake: if it is down or slow the
    loader's value is returned uncached. A value loaded before an
    `invalidate` of its namespace is never served after it.
    """

    keeps: bool
    """False when caching is switched off: every read loads, and a use case may
    then read what it needs in one transaction instead of one per key."""

    async def get_or_set(
        self,
        key: CacheKey,
        loader: Callable[[], Awaitable[T | None]],
        *,
        type_: type[T],
        ttl_s: float,
        negative_ttl_s: float | None = None,
    ) -> T | None:
        """The cached value of `key`, or the loader's (then cached for about `ttl_s`).

        A None from the loader is cached for `negative_ttl_s` when given.
        Raises UnreadableValueError when the loader's value cannot be stored
        (it is not cached; the next call loads again).
        """
        ...

    async def peek(self, *reads: tuple[CacheKey, type[Any]]) -> list[Hit[Any] | None]:
        """Current cached values of several keys in one round trip; None for a miss.

        Loads nothing: on a miss, call `get_or_set` (in the order that access
        checks require).
        """
        ...

    async def invalidate(self, workspace_id: UUID, *namespaces: str) -> None:
        """Make every value cached so far in these namespaces of the workspace unreachable."""
        ...
