"""Calls that arrive together, sent together in one round trip.

Under load many tasks (or requests) talk to Redis and Postgres at the same
moment, and a round trip costs far more CPU than its bytes: connection
checkout, packing, a `send` and an `epoll` system call (50-100 µs each in
this VM), parsing. A Coalescer sends a call alone, at the event loop's next
turn, when nothing is in flight; calls that arrive while a batch is in
flight wait for it and then go out together as the next batch. One batch in
flight per Coalescer: sending at every turn instead (several batches in
flight) gave batches of 1.3 calls on average in the worker benchmark, one
in flight about 2 (BENCHMARKS.md). A lone call waits for nothing but the
next turn.

`send` answers every item, each with its own value or its own exception (an
error belongs to its caller, not to the batch); if `send` raises, every
caller of the batch gets that error. Every caller is answered even if the
send is cancelled before or while it runs (`incomplete()`); a caller that is
cancelled itself just stops waiting. No library we found does this for
redis-py or asyncpg (redis-py's pipelines and asyncpg's `executemany` are
built by the caller), hence this small class. tests/unit/test_coalescing.py
keeps each caller's answer the one its call alone would get.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

Send = Callable[[list[In]], Awaitable[Sequence[Out | BaseException]]]


class Coalescer(Generic[In, Out]):
    def __init__(
        self, send: Send[In, Out], incomplete: Callable[[], Exception], max_batch: int = 256
    ) -> None:
        """`send(items)` answers each item in order; `incomplete()` is the error of
        callers whose batch was cancelled; batches hold at most `max_batch` items."""
        self._send, self._incomplete, self._max_batch = send, incomplete, max_batch
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, item: In) -> Out:
        loop = asyncio.get_running_loop()
        if self._waiting and self._loop is not loop:
            self._waiting = []  # left by an event loop that stopped before sending them
        if not self._waiting:
            self._loop = loop
            if not self._sending:
                loop.call_soon(self._flush)
        future: asyncio.Future[Out] = loop.create_future()
        self._waiting.append((item, future))
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        for start in range(0, len(waiting), self._max_batch):
            batch = waiting[start : start + self._max_batch]
            task = asyncio.ensure_future(self._execute(batch))
            self._sending.add(task)
            task.add_done_callback(partial(self._sent, batch))

    def _sent(self, batch: list[tuple[In, asyncio.Future[Out]]], task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        for _, future in batch:
            if not future.done():
                future.set_exception(self._incomplete())
        if not self._sending and self._waiting:
            self._flush()

    async def _execute(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            answers = await self._send([item for item, _ in batch])
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
