"""DeleteUIState: remove the caller's entry under a key."""

from __future__ import annotations

from application.access import current_workspace
from application.caching import cached_role
from domain.entities import Role
from domain.errors import NotFoundError
from domain.ports import Cache, UIStateStore, UnitOfWork
from domain.rules import require_role
from domain.ui_state import WRITING, check_key


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
