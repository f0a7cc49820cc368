"""UI state in Redis: one string per entry with its own expiry, and a per-user index.

Written by hand: it is four short commands, and no library we know keeps a
per-user index of expiring keys (so that listing never SCANs) on Redis 6.2,
which has no per-field hash expiry (HEXPIRE is 7.4).

Layout (the `{ws:<uuid>}` hash tag keeps a workspace's keys in one Redis
Cluster slot, so the scripts below touch one slot):

    keel:{ws:<uuid>}:ui:<user>:<key>   expiry (ms, 8 bytes big-endian) + the JSON value;
                                       the key expires at that instant (SET … PXAT)
    keel:{ws:<uuid>}:ui-index:<user>   sorted set: key → expiry (ms); the set itself
                                       expires with its longest-lived entry

Every entry's key is checked against `domain.ui_state.KEY` before it gets
here, so it cannot break out of the layout. Writes and deletes change the
entry and the index together in one script. Expired index members are pruned,
by Redis' own clock, whenever the index is written or listed; the index only
over-counts an entry that Redis evicted, which a `noeviction` Redis (what the
BullMQ queue needs anyway) never does.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID

from redis.asyncio import Redis

from adapters.redis.client import unavailable_as
from domain.ui_state import UIState

_NOW_MS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""

# KEYS: index, entry. ARGV: key, stored value, expiry ms, max keys.
_PUT = (
    _NOW_MS
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'PXAT', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local longest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], longest[2])
return 1
"""
)

# KEYS: index, entry. ARGV: key.
_DELETE = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('DEL', KEYS[2])
"""

# KEYS: index.
_LIST = _NOW_MS + "return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')"

_EXPIRY = struct.Struct(">q")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _ms(moment: datetime) -> int:
    # Integer arithmetic: a float timestamp could turn .575 into 574 ms.
    return (moment - _EPOCH) // _MS


def _moment(ms: int) -> datetime:
    return _EPOCH + ms * _MS


class RedisUIStateStore:
    def __init__(self, redis: Redis, prefix: str = "keel") -> None:
        self._redis = redis
        self._prefix = prefix
        self._put = redis.register_script(_PUT)
        self._delete = redis.register_script(_DELETE)
        self._list = redis.register_script(_LIST)

    def _entry(self, workspace_id: UUID, user_id: UUID, key: str) -> str:
        return f"{self._prefix}:{{ws:{workspace_id}}}:ui:{user_id}:{key}"

    def _index(self, workspace_id: UUID, user_id: UUID) -> str:
        return f"{self._prefix}:{{ws:{workspace_id}}}:ui-index:{user_id}"

    async def get(self, workspace_id: UUID, user_id: UUID, key: str) -> UIState | None:
        with unavailable_as("UI state"):
            raw = cast(
                "bytes | None", await self._redis.get(self._entry(workspace_id, user_id, key))
            )
        if raw is None:
            return None
        (expires_ms,) = _EXPIRY.unpack_from(raw)
        return UIState(workspace_id, user_id, key, raw[_EXPIRY.size :], _moment(expires_ms))

    async def put(self, state: UIState, max_keys: int) -> bool:
        expires_ms = _ms(state.expires_at)
        index = self._index(state.workspace_id, state.user_id)
        entry = self._entry(state.workspace_id, state.user_id, state.key)
        stored = _EXPIRY.pack(expires_ms) + state.value
        with unavailable_as("UI state"):
            done = await self._put(
                keys=[index, entry], args=[state.key, stored, expires_ms, max_keys]
            )
        return bool(done)

    async def delete(self, workspace_id: UUID, user_id: UUID, key: str) -> bool:
        keys = [self._index(workspace_id, user_id), self._entry(workspace_id, user_id, key)]
        with unavailable_as("UI state"):
            deleted = await self._delete(keys=keys, args=[key])
        return bool(deleted)

    async def list(self, workspace_id: UUID, user_id: UUID) -> list[UIState]:
        with unavailable_as("UI state"):
            flat = cast("list[bytes]", await self._list(keys=[self._index(workspace_id, user_id)]))
        entries = [
            UIState(workspace_id, user_id, flat[i].decode(), b"", _moment(int(flat[i + 1])))
            for i in range(0, len(flat), 2)
        ]
        return sorted(entries, key=lambda entry: entry.key)
