"""Stream tickets and open-stream slots on Redis.

Tickets: EventSource cannot send an Authorization header, so a browser
trades its token for a random ticket (POST stream-tickets) and puts that in
the stream's URL. Redis keeps only the ticket's SHA-256 (a leaked dump holds
no usable ticket), with its grant, for at most 60 s; redeeming is one GETDEL,
so a ticket opens one stream, once, even when two requests race. A user
holds a bounded number of unused tickets: one sorted set per user (member:
the ticket's hash, score: when it lapses), trimmed, counted and added to in
one script before the ticket is stored, and left by a ticket redeemed.

Slots: one sorted set per user (member: slot id, score: when it lapses),
trimmed and counted in one script, so the per-user cap holds across every
API process, and a process that dies leaves slots that lapse on their own.
A released slot leaves a tombstone for RELEASED_KEEP_MS, which a renewal
checks in the same script: a renewal that reaches Redis after the release (a
cancelled or retried command still on its way, on another connection) can
never take the slot again.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import secrets
import time
from datetime import UTC, datetime
from typing import cast
from uuid import UUID, uuid4

import msgspec
from redis.exceptions import RedisError

from adapters.redis.client import OOM_GATE, RedisClient, unavailable_as
from domain.events import StreamGrant

WHAT = "event streams"

# KEYS: the user's slots. ARGV: now ms, limit, lapse ms, slot, key TTL ms.
# The gate first: a full Redis refuses a new slot (see OOM_GATE).
_ACQUIRE = (
    OOM_GATE
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""
)


# KEYS: the user's tickets. ARGV: now ms, limit, lapse ms, ticket hash.
_TAKE_TICKET = (
    OOM_GATE
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
local longest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], longest[2])
return 1
"""
)

# KEYS: the user's slots, their tombstones. ARGV: slot, lapse ms, key TTL ms.
_RENEW = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: the user's slots, their tombstones. ARGV: slot, now ms, tombstone ms.
_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2] + ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""
RELEASED_KEEP_MS = 15_000  # longer than any command can stay on its way


class _Grant(msgspec.Struct, array_like=True):
    user_id: UUID
    workspace_id: UUID
    task_id: UUID | None
    expires_at: datetime


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def _ticket_key(hashed: str) -> str:
    return f"keel:ticket:{hashed}"


def _tickets_key(user_id: UUID) -> str:
    return f"keel:{{u:{user_id}}}:tickets"


def slots_key(user_id: UUID) -> str:
    """The user's slots (the hash tag keeps the tombstones in the same cluster slot)."""
    return f"keel:{{streams:{user_id}}}"


def _released_key(user_id: UUID) -> str:
    return f"{slots_key(user_id)}:released"


class RedisStreamTickets:
    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._take = redis.register_script(_TAKE_TICKET)

    async def issue(self, grant: StreamGrant, per_user: int) -> str | None:
        ticket = secrets.token_urlsafe(32)
        hashed = _hash(ticket)
        now_ms = int(time.time() * 1000)
        ttl_ms = max(math.ceil((grant.expires_at - datetime.now(UTC)).total_seconds() * 1000), 1)
        payload = msgspec.msgpack.encode(
            _Grant(grant.user_id, grant.workspace_id, grant.task_id, grant.expires_at)
        )
        with unavailable_as(WHAT):
            args: list[int | str] = [now_ms, per_user, now_ms + ttl_ms, hashed]
            if not await self._take(keys=[_tickets_key(grant.user_id)], args=args):
                return None
            await self._redis.set(_ticket_key(hashed), payload, px=ttl_ms)
        return ticket

    async def redeem(self, ticket: str) -> StreamGrant | None:
        if not 20 <= len(ticket) <= 100:
            return None
        hashed = _hash(ticket)
        with unavailable_as(WHAT):
            payload = await self._redis.getdel(_ticket_key(hashed))
        if payload is None:
            return None
        grant = msgspec.msgpack.decode(cast(bytes, payload), type=_Grant)
        with contextlib.suppress(RedisError, OSError):
            # Its place in the user's count; it would lapse on its own anyway.
            await self._redis.zrem(_tickets_key(grant.user_id), hashed)
        if grant.expires_at <= datetime.now(UTC):
            return None
        return StreamGrant(grant.user_id, grant.workspace_id, grant.task_id, grant.expires_at)


class RedisOpenStreams:
    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, user_id: UUID, limit: int, ttl_s: float) -> str | None:
        slot, now_ms, ttl_ms = uuid4().hex, int(time.time() * 1000), int(ttl_s * 1000)
        with unavailable_as(WHAT):
            taken = await self._acquire(
                keys=[slots_key(user_id)], args=[now_ms, limit, now_ms + ttl_ms, slot, ttl_ms]
            )
        return slot if taken else None

    async def renew(self, user_id: UUID, slot: str, ttl_s: float) -> None:
        lapses, ttl_ms = int((time.time() + ttl_s) * 1000), int(ttl_s * 1000)
        with unavailable_as(WHAT):
            await self._renew(keys=self._keys(user_id), args=[slot, lapses, ttl_ms])

    async def release(self, user_id: UUID, slot: str) -> None:
        now_ms = int(time.time() * 1000)
        with unavailable_as(WHAT):
            await self._release(keys=self._keys(user_id), args=[slot, now_ms, RELEASED_KEEP_MS])

    @staticmethod
    def _keys(user_id: UUID) -> list[str]:
        return [slots_key(user_id), _released_key(user_id)]
