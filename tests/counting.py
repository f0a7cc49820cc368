"""A real object, counting the calls of some of its methods (no fake behind it)."""

from __future__ import annotations

from typing import Any


class CountingCalls:
    def __init__(self, target: Any, *names: str) -> None:
        self.target = target
        self.calls = dict.fromkeys(names, 0)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if name not in self.calls:
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted
