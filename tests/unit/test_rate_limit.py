"""The task rate limit fails open: a count that Redis cannot take lets the
request through without RateLimit headers (entrypoints/http/rate_limit.py);
a refusal and any other failure are not hidden."""

from __future__ import annotations

import uuid

import pytest

from domain.errors import RateLimitedError, StorageFullError, UnavailableError
from domain.ports import Quota
from entrypoints.http.rate_limit import count_task


class _Limit:
    def __init__(self, answer: Quota | Exception) -> None:
        self.answer, self.subjects = answer, list[str]()

    async def take(self, subject: str) -> Quota:
        self.subjects.append(subject)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize(
    "error",
    [UnavailableError("the task rate limit is unavailable"), StorageFullError("full", 5)],
    ids=["unreachable", "full"],
)
async def test_a_count_that_fails_lets_the_request_through(error: UnavailableError) -> None:
    assert await count_task(_Limit(error), uuid.uuid4()) == {}


async def test_a_count_says_where_the_caller_stands() -> None:
    user = uuid.uuid4()
    limit = _Limit(Quota(limit=10, remaining=7, reset_s=42))
    headers = await count_task(limit, user)
    assert headers == {"RateLimit-Limit": "10", "RateLimit-Remaining": "7", "RateLimit-Reset": "42"}
    assert limit.subjects == [f"user:{user}"]


@pytest.mark.parametrize(
    "error", [RateLimitedError("at most 10 tasks a minute", 3, 10), RuntimeError("a bug")]
)
async def test_a_refusal_and_other_failures_are_not_hidden(error: Exception) -> None:
    with pytest.raises(type(error)):
        await count_task(_Limit(error), uuid.uuid4())
