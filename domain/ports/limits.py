"""Rate limits shared by every process of a deployment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Quota:
    """Where a subject stands after one request was counted."""

    limit: int
    remaining: int
    reset_s: int  # until the window has room again


class RateLimit(Protocol):
    async def take(self, subject: str) -> Quota:
        """Count one request of `subject` over a moving window.

        Raises RateLimitedError when the window is full (nothing is counted),
        UnavailableError when the count cannot be reached."""
        ...
