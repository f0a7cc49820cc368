"""Per-user UI state."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from domain.ui_state import Refusal, UIState, UIStateQuota


class UIStateStore(Protocol):
    """Per-user transient UI state of each workspace, every entry with its own lifetime."""

    async def get(self, workspace_id: UUID, user_id: UUID, key: str) -> UIState | None: ...

    async def put(self, state: UIState, quota: UIStateQuota) -> Refusal | None:
        """Store (or replace) the entry, or say which of `quota`'s bounds it would
        pass: the user's live keys in that workspace, or the user's entries or
        charged bytes (`domain.ui_state.charge`) across every workspace. The
        check and the write are one atomic step: concurrent writers cannot
        pass a bound together."""
        ...

    async def delete(self, workspace_id: UUID, user_id: UUID, key: str) -> bool:
        """False when there was no live entry."""
        ...

    async def list(self, workspace_id: UUID, user_id: UUID) -> list[UIState]:
        """The user's live entries in the workspace, ordered by key, values left empty."""
        ...
