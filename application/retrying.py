"""The retry policy for Postgres and Redis calls made by background work.

Exponential backoff with full jitter (the same shape as domain.retry.Backoff,
which spaces task attempts through the queue), capped, within a deadline, and
only for errors worth retrying: UnavailableError, which the adapters raise
for a lost connection, a timeout or a serialization failure. tenacity does
the looping.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from domain.errors import UnavailableError

T = TypeVar("T")
logger = logging.getLogger("keel.retry")


def _log(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.warning("attempt %s failed (%s); retrying", state.attempt_number, error)


async def retried(
    call: Callable[[], Awaitable[T]], deadline_s: float = 10.0, base_s: float = 0.05
) -> T:
    """`call()`, again after each UnavailableError until `deadline_s` has passed."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(UnavailableError),
        wait=wait_random_exponential(multiplier=base_s, max=2.0),
        stop=stop_after_delay(deadline_s),
        before_sleep=_log,
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")
