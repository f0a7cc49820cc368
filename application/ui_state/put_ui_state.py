"""PutUIState: store a value under a key for a while, within the caller's quota."""

from __future__ import annotations

from datetime import timedelta

from application.access import current_workspace
from application.caching import cached_role
from domain.entities import Role
from domain.errors import ConflictError, QuotaExceededError
from domain.ports import Cache, Clock, UIStateStore, UnitOfWork
from domain.rules import require_role
from domain.ui_state import (
    DEFAULT_QUOTA,
    WRITING,
    Refusal,
    UIState,
    UIStateQuota,
    check_key,
    check_ttl,
    check_value,
)


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
        clock: Clock,
        quota: UIStateQuota = DEFAULT_QUOTA,
    ) -> None:
        self._uow, self._cache, self._store, self._clock = uow, cache, store, clock
        self._quota = quota

    async def execute(self, key: str, value: bytes, ttl_s: int | None) -> UIState:
        key, ttl_s, value = check_key(key), check_ttl(ttl_s), check_value(value)
        require_role(await cached_role(self._uow, self._cache), Role.MEMBER, WRITING)
        now = self._clock.now()
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
