"""Per-user transient UI state (open panels, drafts, filters): an entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class UIState:
    workspace_id: UUID
    user_id: UUID
    key: str
    value: bytes  # the JSON document exactly as the client sent it
    expires_at: datetime
