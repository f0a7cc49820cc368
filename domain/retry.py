"""The retry policy for task attempts: exponential backoff with full jitter,
capped, never sooner than a provider's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_ms: int = 1000
    cap_ms: int = 60_000

    def delay_ms(
        self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> int:
        """Delay before attempt `attempt + 1`: uniform in [0, min(cap, base·2^(attempt-1))]."""
        ceiling = min(self.cap_ms, self.base_ms * 2 ** max(attempt - 1, 0))
        delay = int((rng or random).uniform(0, ceiling))
        if retry_after_s is not None:
            delay = max(delay, int(retry_after_s * 1000))
        return min(delay, max(self.cap_ms, int((retry_after_s or 0) * 1000)))
