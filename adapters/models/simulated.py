"""An offline, deterministic model for development and load tests: it streams
a fixed answer derived from the prompt, `token_delay_ms` apart, and fails
transiently with probability `fail_rate` (before its first token)."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator

from domain.errors import TransientModelError


class SimulatedModel:
    name = "simulated"

    def __init__(
        self, token_delay_ms: float = 20, fail_rate: float = 0.0, tokens: int = 24
    ) -> None:
        self._delay_s = token_delay_ms / 1000
        self._fail_rate = fail_rate
        self._tokens = tokens
        self._random = random.Random()  # noqa: S311 - simulated failures, not secrets

    async def stream(self, system: str, prompt: str) -> AsyncIterator[str]:
        if self._random.random() < self._fail_rate:
            raise TransientModelError("simulated transient failure", retry_after_s=None)
        seed = hashlib.sha256(f"{system}\n{prompt}".encode()).hexdigest()
        words = prompt.split() or ["…"]
        for index in range(self._tokens):
            if self._delay_s:
                await asyncio.sleep(self._delay_s)
            yield f"{words[index % len(words)]}-{seed[index % 60 : index % 60 + 4]} "
