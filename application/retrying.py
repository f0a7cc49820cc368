"""The retry policy for Postgres and Redis calls made by background work.

Exponential backoff with full jitter (the same shape as domain.retry.Backoff,
which spaces task attempts through the queue), capped, within a deadline, and
only for errors worth retrying: UnavailableError, which the adapters raise
for a lost connection, a timeout or a serialization failure, but not
StorageFullError: a full Redis does not empty itself in seconds, and
retrying would only hold the caller up (a worker publishing a task's events
would wait out a deadline for each). tenacity does
the looping once a call has failed; the first call is made directly, since
setting up tenacity's loop costs about 50 µs and a worker makes several
such calls per task, nearly all of which succeed at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_random_exponential,
)

from domain.errors import StorageFullError, UnavailableError
from domain.ports import Clock

T = TypeVar("T")
logger = logging.getLogger("keel.retry")


MAX_WAIT_S = 2.0


def _worth_retrying(error: BaseException) -> bool:
    return isinstance(error, UnavailableError) and not isinstance(error, StorageFullError)


def _log(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    # tenacity's attempt 1 is the second call (the first was made directly).
    logger.warning("attempt %s failed (%s); retrying", state.attempt_number + 1, error)


async def retried(
    call: Callable[[], Awaitable[T]],
    deadline_s: float = 10.0,
    base_s: float = 0.05,
    clock: Clock | None = None,
) -> T:
    """`call()`, again after each UnavailableError (but StorageFullError) until
    `deadline_s` has passed since the first call, on `clock` (the system's
    monotonic clock when None).

    The waits: a random time up to `base_s` after the first failure, up to
    twice that after the second, four times after the third... at most MAX_WAIT_S.
    """
    monotonic = clock.monotonic if clock is not None else time.monotonic
    started = monotonic()
    try:
        return await call()
    except UnavailableError as error:
        if not _worth_retrying(error):
            raise
        logger.warning("attempt 1 failed (%s); retrying", error)
    await asyncio.sleep(random.uniform(0, min(base_s, MAX_WAIT_S)))  # noqa: S311
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_worth_retrying),
        # Its attempt 1 is our second call: the doubling goes on from there.
        wait=wait_random_exponential(multiplier=2 * base_s, max=MAX_WAIT_S),
        stop=lambda _: monotonic() - started >= deadline_s,
        before_sleep=_log,
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")
