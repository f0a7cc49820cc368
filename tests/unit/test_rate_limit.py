"""The task rate limit fails open: a store that cannot read answers "no
count yet", one that cannot write forgets the count (entrypoints/http/rate_limit.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from litestar.stores.memory import MemoryStore

from domain.errors import StorageFullError, UnavailableError
from entrypoints.http.rate_limit import FailOpenStore


class _DownStore(MemoryStore):
    def __init__(self, error: UnavailableError) -> None:
        super().__init__()
        self.error = error

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        raise self.error

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [UnavailableError("the task rate limit is unavailable"), StorageFullError("full", 5)],
    ids=["unreachable", "full"],
)
async def test_a_store_that_fails_lets_the_request_through(error: UnavailableError) -> None:
    store = FailOpenStore(_DownStore(error))
    await store.set("user:1", b"count")
    assert await store.get("user:1") is None


async def test_a_working_store_counts() -> None:
    store = FailOpenStore(MemoryStore())
    await store.set("user:1", b"3", expires_in=60)
    assert await store.get("user:1") == b"3"
    assert await store.exists("user:1")
    assert 0 < (await store.expires_in("user:1") or 0) <= 60
    await store.delete("user:1")
    assert not await store.exists("user:1")
    await store.set("user:2", b"1")
    await store.delete_all()
    assert await store.get("user:2") is None


async def test_other_failures_are_not_hidden() -> None:
    class _Broken(MemoryStore):
        async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
            raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        await FailOpenStore(_Broken()).get("user:1")
