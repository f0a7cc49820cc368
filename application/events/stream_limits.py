"""How many event streams and stream tickets one user may hold; how often a quiet one beats."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamLimits:
    heartbeat_s: float = 15.0
    per_user: int = 20
    ended_grace_s: float = 1.0  # how long a finished task's feed waits for its terminal event
    tickets_per_user: int = 100  # unused tickets one user may hold (each lives TICKET_TTL_S)
