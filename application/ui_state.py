"""Use cases on a user's transient UI state in a workspace.

Each one checks the caller's membership first (cached, invalidated on every
membership change, so a removed member is refused at once) and touches only
the caller's own entries: the store is always addressed with the caller's
user id, never one from the request. Viewers read; writing needs member.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

from application.access import current_workspace
from application.caching import cached_role
from application.pagination import check_limit
from domain.entities import Page, Role
from domain.errors import ConflictError, InvalidInputError, NotFoundError, QuotaExceededError
from domain.ports import Cache, UIStateStore, UnitOfWork
from domain.rules import require_role
from domain.ui_state import (
    DEFAULT_QUOTA,
    Refusal,
    UIState,
    UIStateQuota,
    check_key,
    check_ttl,
    check_value,
)

WRITING = "writing UI state"


class GetUIState:
    """The caller's entry under `key`. Raises NotFoundError when there is none."""

    def __init__(self, uow: UnitOfWork, cache: Cache, store: UIStateStore) -> None:
        self._uow, self._cache, self._store = uow, cache, store

    async def execute(self, key: str) -> UIState:
        key = check_key(key)
        await cached_role(self._uow, self._cache)
        state = await self._store.get(current_workspace(self._uow), self._uow.caller.user_id, key)
        if state is None:
            raise NotFoundError("no UI state under this key")
        return state


class PutUIState:
    """Store `value` under `key` for `ttl_s` seconds (the default when None).

    Raises InvalidInputError for a bad key, value or ttl, PermissionDeniedError
    below member, ConflictError when the caller already keeps as many other
    keys in this workspace as the quota allows, QuotaExceededError when the
    entry would pass the caller's quota across all their workspaces.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        cache: Cache,
        store: UIStateStore,
        quota: UIStateQuota = DEFAULT_QUOTA,
    ) -> None:
        self._uow, self._cache, self._store = uow, cache, store
        self._quota = quota

    async def execute(self, key: str, value: bytes, ttl_s: int | None) -> UIState:
        key, ttl_s, value = check_key(key), check_ttl(ttl_s), check_value(value)
        require_role(await cached_role(self._uow, self._cache), Role.MEMBER, WRITING)
        now = datetime.now(UTC)
        state = UIState(
            workspace_id=current_workspace(self._uow),
            user_id=self._uow.caller.user_id,
            key=key,
            value=value,
            # Milliseconds: what the store keeps, so every read answers the same instant.
            expires_at=now.replace(microsecond=now.microsecond // 1000 * 1000)
            + timedelta(seconds=ttl_s),
        )
        refused = await self._store.put(state, self._quota)
        if refused is Refusal.WORKSPACE_KEYS:
            raise ConflictError(
                f"you already keep {self._quota.keys_per_workspace} UI-state keys in this"
                " workspace; delete some or let them expire"
            )
        if refused is Refusal.USER_ENTRIES:
            raise QuotaExceededError(
                f"you already keep {self._quota.entries_per_user} UI-state entries across"
                " your workspaces, as many as one user may; delete some or let them expire"
            )
        if refused is Refusal.USER_BYTES:
            raise QuotaExceededError(
                f"your UI state across all workspaces would pass {self._quota.bytes_per_user}"
                " bytes, as much as one user may keep; delete some or let them expire"
            )
        return state


class DeleteUIState:
    """Raises NotFoundError when the caller has no entry under `key`."""

    def __init__(self, uow: UnitOfWork, cache: Cache, store: UIStateStore) -> None:
        self._uow, self._cache, self._store = uow, cache, store

    async def execute(self, key: str) -> None:
        key = check_key(key)
        require_role(await cached_role(self._uow, self._cache), Role.MEMBER, WRITING)
        workspace_id, user_id = current_workspace(self._uow), self._uow.caller.user_id
        if not await self._store.delete(workspace_id, user_id, key):
            raise NotFoundError("no UI state under this key")


class ListUIState:
    """The caller's live keys (values left empty), ordered by key, a page at a time."""

    def __init__(self, uow: UnitOfWork, cache: Cache, store: UIStateStore) -> None:
        self._uow, self._cache, self._store = uow, cache, store

    async def execute(self, limit: int, cursor: str | None) -> Page[UIState]:
        limit, after = check_limit(limit), decode_key_cursor(cursor)
        await cached_role(self._uow, self._cache)
        entries = await self._store.list(current_workspace(self._uow), self._uow.caller.user_id)
        rest = [entry for entry in entries if after is None or entry.key > after]
        if len(rest) > limit:
            return Page(rest[:limit], encode_key_cursor(rest[limit - 1].key))
        return Page(rest, None)


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
