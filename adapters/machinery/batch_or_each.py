"""A Coalescer's send that makes one batch call, and each change alone when
the batch cannot answer it.

A batch call (one statement for many changes) is atomic: one bad change fails
all of them, and it cannot make two changes of one thing in order. So the
first change of each thing goes in the batch; a thing's later changes go
alone after it, in order; and when the batch fails with a refusal (an error
of `falls_back`, not one of availability) every change of it is made again
alone, so that one change's error is only its own caller's. A lone change
never goes as a batch. The answers are the ones making each change alone, in
order, would give: tests/unit/test_batch_or_each.py keeps them equal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, cast

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class BatchOrEach(Generic[Item, Answer]):
    def __init__(
        self,
        batch: Callable[[list[Item]], Awaitable[list[Answer]]],
        one: Callable[[Item], Awaitable[Answer]],
        *,
        key: Callable[[Item], Hashable],
        falls_back: type[Exception] | tuple[type[Exception], ...],
    ) -> None:
        """`batch(items)` answers items of distinct `key`s in order, or raises;
        `one(item)` answers one; a batch that raises `falls_back` is made alone."""
        self._batch, self._one, self._key, self._falls_back = batch, one, key, falls_back

    async def __call__(self, items: list[Item]) -> list[Answer | BaseException]:
        answers: list[Answer | BaseException | None] = [None] * len(items)
        firsts: list[int] = []
        alone: list[int] = []
        seen: set[Hashable] = set()
        for index, item in enumerate(items):
            key = self._key(item)
            (alone if key in seen else firsts).append(index)
            seen.add(key)
        if len(firsts) > 1:
            try:
                batch = await self._batch([items[index] for index in firsts])
            except self._falls_back:
                alone = list(range(len(items)))  # each alone, with its own answer
            else:
                for index, answer in zip(firsts, batch, strict=True):
                    answers[index] = answer
        else:
            alone = list(range(len(items)))
        for index in sorted(alone):
            try:
                answers[index] = await self._one(items[index])
            except Exception as error:
                answers[index] = error
        return cast("list[Answer | BaseException]", answers)
