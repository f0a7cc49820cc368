"""Cached reads shared by use cases: the caller's membership and foundation data.

A cached read needs no Postgres at all: the membership check every request
starts with is cached too, and invalidated after every membership change.
Writes keep checking membership inside their own transaction.
"""

from __future__ import annotations

from uuid import UUID

from application.access import current_workspace
from domain.cache import member_key
from domain.entities import Role
from domain.errors import NotFoundError
from domain.ports import Cache, UnitOfWork

MEMBER_TTL_S = 60.0
FOUNDATION_TTL_S = 300.0
MISSING_TTL_S = 5.0


async def cached_role(uow: UnitOfWork, cache: Cache) -> Role:
    """The caller's role in the bound workspace, from the cache when it can.

    Raises NotFoundError for a non-member (never cached: a stranger's guesses
    must not fill the cache).
    """
    workspace_id, user_id = current_workspace(uow), uow.caller.user_id

    async def load() -> Role | None:
        async with uow:
            return await uow.memberships.role_of(workspace_id, user_id)

    role = await cache.get_or_set(
        member_key(workspace_id, user_id), load, type_=Role, ttl_s=MEMBER_TTL_S
    )
    if role is None:
        raise NotFoundError("workspace not found")
    return role


async def forget(cache: Cache, workspace_id: UUID, *namespaces: str) -> None:
    """Invalidate after a commit (never before: a reader could re-cache the old value)."""
    await cache.invalidate(workspace_id, *namespaces)
