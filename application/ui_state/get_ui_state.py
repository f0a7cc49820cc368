"""GetUIState: the caller's entry under a key."""

from __future__ import annotations

from application.access import current_workspace
from application.caching import cached_role
from domain.errors import NotFoundError
from domain.ports import Cache, UIStateStore, UnitOfWork
from domain.ui_state import UIState, check_key


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
