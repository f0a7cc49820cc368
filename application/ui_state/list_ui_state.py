"""ListUIState: the caller's live keys, ordered by key, a page at a time."""

from __future__ import annotations

from application.access import current_workspace
from application.caching import cached_role
from application.pagination import check_limit
from application.ui_state.key_cursor import decode_key_cursor, encode_key_cursor
from domain.entities import Page
from domain.ports import Cache, UIStateStore, UnitOfWork
from domain.ui_state import UIState


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
