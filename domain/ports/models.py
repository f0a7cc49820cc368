"""The language model an agent task runs on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class LanguageModel(Protocol):
    """A chat model that streams its answer.

    Raises TransientModelError (worth retrying, maybe with `retry_after_s`) or
    ModelError (not).
    """

    name: str

    def stream(self, system: str, prompt: str) -> AsyncIterator[str]: ...
