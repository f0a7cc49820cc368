"""The Coalescer (adapters/machinery/coalescing.py): calls of one loop turn go out as one
batch, at most one batch is in flight, and every caller gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from adapters.machinery.coalescing import Coalescer


class Recorder:
    """A send that records its batches and can be held open."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(items)
        await self.gate.wait()
        return [ValueError(f"no {item}") if item < 0 else item * 10 for item in items]


def _coalescer(send: Recorder, max_batch: int = 256) -> Coalescer[int, int]:
    return Coalescer(send, lambda: ConnectionError("incomplete"), max_batch=max_batch)


async def test_calls_of_one_turn_are_one_batch_in_order_each_with_its_answer() -> None:
    send = Recorder()
    calls = _coalescer(send)
    answers = await asyncio.gather(*(calls(i) for i in [3, 1, -2, 4]), return_exceptions=True)
    assert send.batches == [[3, 1, -2, 4]]
    assert answers[:2] == [30, 10]
    assert answers[3] == 40
    assert isinstance(answers[2], ValueError), "an error answer is its caller's alone"


async def test_calls_made_while_a_batch_is_in_flight_go_together_after_it() -> None:
    send = Recorder()
    calls = _coalescer(send)
    send.gate.clear()
    first = asyncio.ensure_future(calls(1))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(calls(i)) for i in (2, 3)]
    await asyncio.sleep(0.01)
    late = asyncio.ensure_future(calls(4))
    await asyncio.sleep(0.01)
    assert send.batches == [[1]], "nothing more is sent while a batch is in flight"
    send.gate.set()
    assert await asyncio.gather(first, *later, late) == [10, 20, 30, 40]
    assert send.batches == [[1], [2, 3, 4]]


async def test_batches_hold_at_most_max_batch_items() -> None:
    send = Recorder()
    calls = _coalescer(send, max_batch=2)
    assert await asyncio.gather(*(calls(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert send.batches == [[0, 1], [2, 3], [4]]


async def test_a_failed_send_fails_every_caller_of_its_batch_and_only_those() -> None:
    async def broken(items: list[int]) -> Sequence[int]:
        if 0 in items:
            raise OSError("connection lost")
        return items

    calls: Coalescer[int, int] = Coalescer(broken, lambda: ConnectionError("incomplete"))
    answers = await asyncio.gather(calls(0), calls(1), return_exceptions=True)
    assert all(isinstance(answer, OSError) for answer in answers), answers
    assert await calls(7) == 7, "the next batch is sent normally"


async def test_a_cancelled_send_answers_its_callers_and_a_cancelled_caller_leaves_others() -> None:
    send = Recorder()
    calls = _coalescer(send)
    send.gate.clear()
    callers = [asyncio.ensure_future(calls(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    callers[0].cancel()
    (sending,) = calls._sending
    sending.cancel()
    done, _ = await asyncio.wait(callers, timeout=2)
    assert len(done) == 3, "no caller may be left waiting"
    assert callers[0].cancelled()
    for caller in callers[1:]:
        with pytest.raises(ConnectionError, match="incomplete"):
            caller.result()
    send.gate.set()
    assert await calls(5) == 50, "and the next call is sent"
