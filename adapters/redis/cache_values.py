"""The cache's keys and stored values (adapters/redis/cache.py uses them).

Layout (the `{ws:<uuid>}` hash tag keeps a workspace's keys in one Redis
Cluster slot, so the multi-key reads and scripts work there too):

    keel:{ws:<uuid>}:gen:<namespace>         invalidation generation (a random token)
    keel:{ws:<uuid>}:v:<namespace>:<name>    msgpack [generation, payload (nil: not found)]
    keel:{ws:<uuid>}:lock:<namespace>:<name> fill lock across processes
    keel:{ws:<uuid>}:cache-…                 what the workspace has cached, and its
                                             charges (cache_scripts.py: the budget)

A value is a hit only under the generation token it was stored with. A value
msgpack cannot carry (an integer past 64 bits, nesting past its limit) is
stored by nobody: encoding it raises UnreadableValueError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from domain.cache import CacheKey
from domain.errors import UnreadableValueError

T = TypeVar("T")

_ENVELOPE = msgspec.msgpack.Decoder(tuple[str, msgspec.Raw])
_ENCODER = msgspec.msgpack.Encoder()
_NIL = _ENCODER.encode(None)


@dataclass(frozen=True, slots=True)
class CacheKeys:
    generation: str
    value: str
    lock: str
    namespace: str
    base: str

    @classmethod
    def of(cls, prefix: str, key: CacheKey) -> CacheKeys:
        base = f"{prefix}:{{ws:{key.workspace_id}}}"
        return cls(
            generation=f"{base}:gen:{key.namespace}",
            value=f"{base}:v:{key.namespace}:{key.name}",
            lock=f"{base}:lock:{key.namespace}:{key.name}",
            namespace=key.namespace,
            base=base,
        )

    @property
    def budget(self) -> list[str]:
        """The workspace's ledger, charges and total (cache_scripts.py)."""
        return [f"{self.base}:cache-ledger", f"{self.base}:cache-bytes", f"{self.base}:cache-total"]


def envelope(generation: str, value: object) -> bytes:
    """`value` stored under `generation`; raises UnreadableValueError for a
    value msgpack cannot carry."""
    try:
        payload = _ENCODER.encode(value)
    except (msgspec.EncodeError, OverflowError, RecursionError, TypeError, ValueError) as error:
        raise UnreadableValueError(f"the value cannot be cached ({error})") from None
    return _ENCODER.encode((generation, msgspec.Raw(payload)))


class Envelopes:
    """Stored envelopes read back, with one msgpack decoder per type."""

    def __init__(self) -> None:
        self._decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}

    def open(
        self, raw_generation: bytes | None, raw_value: bytes | None, type_: type[T]
    ) -> tuple[bool, T | None]:
        """(hit, value) of a stored envelope read with its namespace's generation;
        raises msgspec.DecodeError or UnicodeDecodeError for one unreadable as `type_`.

        No generation, no hit: a value can only match the random token that was
        current when it was stored, so an evicted or lost generation key can
        never bring an older value back.
        """
        if raw_value is None or raw_generation is None:
            return False, None
        stored_generation, payload = _ENVELOPE.decode(raw_value)
        if stored_generation != raw_generation.decode():
            return False, None
        if bytes(payload) == _NIL:
            return True, None
        return True, self._decoder(type_).decode(payload)

    def _decoder(self, type_: Any) -> msgspec.msgpack.Decoder[Any]:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.msgpack.Decoder(type_)
        return decoder
