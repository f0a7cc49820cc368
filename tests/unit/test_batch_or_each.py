"""BatchOrEach (adapters/machinery/batch_or_each.py) answers as making each
change alone, in order, would: over a small store whose batch call is atomic
(one refused change refuses them all, as one statement does), any list of
changes leaves the same answers and the same store either way."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.machinery.batch_or_each import BatchOrEach

Change = tuple[str, int]  # (counter, amount); a negative total is refused


class RefusedError(Exception):
    """The store's refusal of a change (the batch's fallback error)."""


class Store:
    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.batches: list[list[Change]] = []
        self.alone: list[Change] = []

    async def one(self, change: Change) -> int:
        self.alone.append(change)
        name, amount = change
        total = self.counters.get(name, 0) + amount
        if total < 0:
            raise RefusedError(name)
        self.counters[name] = total
        return total

    async def batch(self, changes: list[Change]) -> list[int]:
        self.batches.append(changes)
        assert len({name for name, _ in changes}) == len(changes), "one change per counter"
        totals = [self.counters.get(name, 0) + amount for name, amount in changes]
        if any(total < 0 for total in totals):
            raise RefusedError("the batch")
        for (name, _), total in zip(changes, totals, strict=True):
            self.counters[name] = total
        return totals


def _counter(change: Change) -> str:
    return change[0]


def _send(store: Store) -> BatchOrEach[Change, int]:
    return BatchOrEach(store.batch, store.one, key=_counter, falls_back=RefusedError)


async def _each_alone(changes: list[Change]) -> tuple[list[object], dict[str, int]]:
    store = Store()
    answers: list[object] = []
    for change in changes:
        try:
            answers.append(await store.one(change))
        except RefusedError as error:
            answers.append(error)
    return answers, store.counters


def _comparable(answers: list[object]) -> list[object]:
    return [repr(answer) if isinstance(answer, Exception) else answer for answer in answers]


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(-3, 5)), max_size=12))
def test_answers_and_effects_are_those_of_each_change_alone(changes: list[Change]) -> None:
    async def both() -> None:
        store = Store()
        answers = await _send(store)(list(changes))
        expected, counters = await _each_alone(changes)
        assert _comparable(list(answers)) == _comparable(expected)
        assert store.counters == counters

    asyncio.run(both())


async def test_first_changes_go_as_one_batch_and_repeats_alone_after_it() -> None:
    store = Store()
    answers = await _send(store)([("a", 1), ("b", 2), ("a", 3), ("c", 4)])
    assert answers == [1, 2, 4, 4]
    assert store.batches == [[("a", 1), ("b", 2), ("c", 4)]]
    assert store.alone == [("a", 3)]


@pytest.mark.parametrize("changes", [[("a", 1)], [("a", 1), ("a", 2)]])
async def test_without_two_distinct_things_there_is_no_batch(changes: list[Change]) -> None:
    store = Store()
    await _send(store)(changes)
    assert (store.batches, store.alone) == ([], changes)


async def test_a_refused_batch_is_made_change_by_change_each_with_its_own_answer() -> None:
    store = Store()
    answers = await _send(store)([("a", 1), ("b", -1), ("c", 2)])
    assert answers[0::2] == [1, 2]
    assert isinstance(answers[1], RefusedError), "the refusal is its own change's"
    assert store.alone == [("a", 1), ("b", -1), ("c", 2)]


async def test_an_error_that_is_no_refusal_fails_the_whole_batch() -> None:
    """Not the store's refusal (the database unavailable): making each change
    again alone would only fail again; the Coalescer gives every caller it."""

    async def unavailable(changes: list[Change]) -> list[int]:
        raise ConnectionError("gone")

    store = Store()
    send = BatchOrEach(unavailable, store.one, key=_counter, falls_back=RefusedError)
    with pytest.raises(ConnectionError):
        await send([("a", 1), ("b", 1)])
    assert store.alone == []
