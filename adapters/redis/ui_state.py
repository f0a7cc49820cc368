"""UI state in Redis: one string per entry with its own expiry, per-workspace
indexes, and a per-user ledger that bounds what the user keeps across them.

Written by hand: it is a few short scripts, and no library we know keeps a
per-user index of expiring keys (so that listing never SCANs) on Redis 6.2,
which has no per-field hash expiry (HEXPIRE is 7.4).

Layout (the `{u:<uuid>}` hash tag keeps a user's keys in one Redis Cluster
slot, so the scripts below, which check the user's quota and write the
entry in one step, touch one slot):

    keel:{u:<user>}:ui:<ws>:<key>   expiry (ms, 8 bytes big-endian) + the JSON value;
                                    the key expires at that instant (SET … PXAT)
    keel:{u:<user>}:ui-index:<ws>   sorted set: key → expiry (ms), the user's keys in
                                    one workspace (listing, the per-workspace cap)
    keel:{u:<user>}:ui-ledger       sorted set: `<ws>:<key>` → expiry (ms), every
                                    entry of the user in every workspace
    keel:{u:<user>}:ui-bytes        hash: `<ws>:<key>` → the bytes it is charged

Each index and the ledger expire with their longest-lived entry. Every
entry's key is checked against `domain.ui_state.KEY` before it gets here, so
it cannot break out of the layout. A write prunes, by Redis' own clock, the
expired members of the workspace's index and of the user's ledger (with
their charges), then checks the quota and writes, in one script: concurrent
writers of one user run one after another, and cannot pass it together.
Deletes change the entry, the index and the ledger together. The ledger
only over-counts an entry that Redis evicted, which a `noeviction` Redis
(what the BullMQ queue needs anyway) never does.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID

from adapters.redis.client import OOM_GATE, RedisClient, unavailable_as
from domain.ui_state import Refusal, UIState, UIStateQuota, charge

_NOW_MS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""

# The gate first: a full Redis refuses the write before the pruning (OOM_GATE).
# KEYS: workspace index, entry, ledger, charges. ARGV: key, stored value, expiry ms,
# ledger member, charge, keys per workspace, entries per user, bytes per user.
# Returns 0 (stored) or the bound it would pass: 1 keys, 2 entries, 3 bytes.
_PUT = (
    OOM_GATE
    + _NOW_MS
    + """
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for i = 1, #gone, 500 do
  redis.call('HDEL', KEYS[4], unpack(gone, i, math.min(i + 499, #gone)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local old = redis.call('HGET', KEYS[4], ARGV[4])
if not old then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[6]) then return 1 end
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[7]) then return 2 end
end
local total = tonumber(ARGV[5]) - (tonumber(old) or 0)
for _, size in ipairs(redis.call('HVALS', KEYS[4])) do total = total + tonumber(size) end
if total > tonumber(ARGV[8]) then return 3 end
redis.call('SET', KEYS[2], ARGV[2], 'PXAT', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
local longest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], longest[2])
longest = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[3], longest[2])
redis.call('PEXPIREAT', KEYS[4], longest[2])
return 0
"""
)
_REFUSALS = {1: Refusal.WORKSPACE_KEYS, 2: Refusal.USER_ENTRIES, 3: Refusal.USER_BYTES}

# KEYS: workspace index, entry, ledger, charges. ARGV: key, ledger member.
# Only removals: Redis runs them even when it is out of memory.
_DELETE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2])
return redis.call('DEL', KEYS[2])
"""

# KEYS: workspace index.
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
    def __init__(self, redis: RedisClient, prefix: str = "keel") -> None:
        self._redis = redis
        self._prefix = prefix
        self._put = redis.register_script(_PUT)
        self._delete = redis.register_script(_DELETE)
        self._list = redis.register_script(_LIST)

    def _user(self, user_id: UUID) -> str:
        return f"{self._prefix}:{{u:{user_id}}}"

    def _entry(self, workspace_id: UUID, user_id: UUID, key: str) -> str:
        return f"{self._user(user_id)}:ui:{workspace_id}:{key}"

    def _index(self, workspace_id: UUID, user_id: UUID) -> str:
        return f"{self._user(user_id)}:ui-index:{workspace_id}"

    def _keys(self, workspace_id: UUID, user_id: UUID, key: str) -> list[str]:
        """The keys every write script takes, in order."""
        user = self._user(user_id)
        return [
            self._index(workspace_id, user_id),
            self._entry(workspace_id, user_id, key),
            f"{user}:ui-ledger",
            f"{user}:ui-bytes",
        ]

    async def get(self, workspace_id: UUID, user_id: UUID, key: str) -> UIState | None:
        with unavailable_as("UI state"):
            raw = cast(
                "bytes | None", await self._redis.get(self._entry(workspace_id, user_id, key))
            )
        if raw is None:
            return None
        (expires_ms,) = _EXPIRY.unpack_from(raw)
        return UIState(workspace_id, user_id, key, raw[_EXPIRY.size :], _moment(expires_ms))

    async def put(self, state: UIState, quota: UIStateQuota) -> Refusal | None:
        expires_ms = _ms(state.expires_at)
        stored = _EXPIRY.pack(expires_ms) + state.value
        args: list[bytes | str | int] = [
            state.key,
            stored,
            expires_ms,
            f"{state.workspace_id}:{state.key}",
            charge(state),
            quota.keys_per_workspace,
            quota.entries_per_user,
            quota.bytes_per_user,
        ]
        with unavailable_as("UI state"):
            answer = await self._put(
                keys=self._keys(state.workspace_id, state.user_id, state.key), args=args
            )
        return _REFUSALS.get(int(answer))

    async def delete(self, workspace_id: UUID, user_id: UUID, key: str) -> bool:
        keys = self._keys(workspace_id, user_id, key)
        with unavailable_as("UI state"):
            deleted = await self._delete(keys=keys, args=[key, f"{workspace_id}:{key}"])
        return bool(deleted)

    async def list(self, workspace_id: UUID, user_id: UUID) -> list[UIState]:
        with unavailable_as("UI state"):
            flat = cast("list[bytes]", await self._list(keys=[self._index(workspace_id, user_id)]))
        entries = [
            UIState(workspace_id, user_id, flat[i].decode(), b"", _moment(int(flat[i + 1])))
            for i in range(0, len(flat), 2)
        ]
        return sorted(entries, key=lambda entry: entry.key)
