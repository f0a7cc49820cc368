"""Identifiers and time."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID


class Clock(Protocol):
    """The current time, as the application sees it (tests advance a fake one)."""

    def now(self) -> datetime:
        """An aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for durations and deadlines."""
        ...


class IdGenerator(Protocol):
    """Returns a new, time-ordered (UUIDv7) identifier on each call."""

    def __call__(self) -> UUID: ...
