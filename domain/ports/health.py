"""What the API checks about itself: its dependencies answer (readiness), and
it may serve at all (a start-up check)."""

from __future__ import annotations

from typing import Protocol


class HealthProbe(Protocol):
    """One dependency the API cannot serve without (Postgres, Redis)."""

    @property
    def name(self) -> str:
        """How readiness reports it (`postgres`, `redis`)."""
        ...

    async def ping(self) -> None:
        """Return once the dependency answered; raise whatever its failure is."""
        ...


class StartupCheck(Protocol):
    """A condition the process must meet before it serves a request."""

    async def check(self) -> None:
        """Raise, each problem in one sentence, when the process must not start."""
        ...
