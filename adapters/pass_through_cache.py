"""The Cache port with caching switched off (KEEL_CACHE=false)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from domain.cache import CacheKey, Hit

T = TypeVar("T")


class PassThroughCache:
    """Every read loads; nothing is kept, so there is nothing to invalidate."""

    keeps = False

    async def get_or_set(
        self,
        key: CacheKey,
        loader: Callable[[], Awaitable[T | None]],
        *,
        type_: type[T],
        ttl_s: float,
        negative_ttl_s: float | None = None,
    ) -> T | None:
        return await loader()

    async def peek(self, *reads: tuple[CacheKey, type[Any]]) -> list[Hit[Any] | None]:
        return [None] * len(reads)

    async def invalidate(self, workspace_id: UUID, *namespaces: str) -> None:
        return None
