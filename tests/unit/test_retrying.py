"""The retry policy: only UnavailableError is retried, within the deadline."""

from __future__ import annotations

import pytest

from application.retrying import retried
from domain.errors import NotFoundError, StorageFullError, UnavailableError
from tests.fakes import FakeClock


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures, self.calls = failures, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


async def test_unavailable_is_retried_until_it_works() -> None:
    call = Flaky([UnavailableError("down"), UnavailableError("down")])
    assert await retried(call, base_s=0.001) == "done"
    assert call.calls == 3


async def test_other_errors_are_not_retried() -> None:
    call = Flaky([NotFoundError("gone")])
    with pytest.raises(NotFoundError):
        await retried(call, base_s=0.001)
    assert call.calls == 1


async def test_a_full_redis_is_not_retried() -> None:
    # It does not empty itself in seconds: retrying only holds up the caller
    # (a worker publishing a task's events would wait out every deadline).
    call = Flaky([StorageFullError("the event bus cannot be written: Redis is full", 5)])
    with pytest.raises(StorageFullError):
        await retried(call, base_s=0.001)
    assert call.calls == 1


async def test_the_deadline_ends_the_retries_with_the_last_error() -> None:
    call = Flaky([UnavailableError(f"down {n}") for n in range(1000)])
    with pytest.raises(UnavailableError):
        await retried(call, deadline_s=0.05, base_s=0.001)
    assert 1 < call.calls < 1000


async def test_the_deadline_is_read_on_the_given_clock() -> None:
    clock = FakeClock()

    async def fails_a_second_later() -> str:
        calls.append(clock.monotonic())
        clock.advance(1)
        raise UnavailableError("down")

    calls: list[float] = []
    start = clock.monotonic()
    with pytest.raises(UnavailableError):
        await retried(fails_a_second_later, deadline_s=5, base_s=0.001, clock=clock)
    assert [at - start for at in calls] == [0, 1, 2, 3, 4]
