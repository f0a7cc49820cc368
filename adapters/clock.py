"""The system's clocks, as the Clock port."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class SystemClock:
    """The wall clock in UTC, and the process's monotonic clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
