"""The event bus's keys and stored form, shared by its publisher and its hub.

    keel:{ws:<uuid>}:events               every event of the workspace (capped)
    keel:{ws:<uuid>}:events:<task>        one task's events, the same ids (capped)
    keel:{ws:<uuid>}:events:<task>:ended  set with the task's terminal event
    keel:{ws:<uuid>}:wake                 pub/sub channel; a message names the task

The `{ws:<uuid>}` hash tag keeps a workspace's keys in one Redis Cluster
slot, so the publish script works there too.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from adapters.redis.client import RedisClient, unavailable_as
from domain.events import EventType, StoredEvent, StreamRef, TaskEvent

logger = logging.getLogger("keel.events")

WHAT = "the event bus"
PAGE = 500  # entries read from a stream at once


class Wire(msgspec.Struct, frozen=True):
    """An event as stored and as sent to browsers (API.md's `data`)."""

    task_id: UUID | None
    workspace_id: UUID
    type: EventType
    at: datetime
    data: dict[str, Any]


encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Wire).decode


def _prefix(workspace_id: UUID) -> str:
    return f"keel:{{ws:{workspace_id}}}"


def stream_key(stream: StreamRef) -> str:
    base = f"{_prefix(stream.workspace_id)}:events"
    return base if stream.task_id is None else f"{base}:{stream.task_id}"


def wake_channel(workspace_id: UUID) -> str:
    return f"{_prefix(workspace_id)}:wake"


def woken_keys(channel: bytes, task_id: bytes) -> tuple[str, str]:
    """The workspace's stream and the task's, of a wake-up on `channel`."""
    workspace = channel.decode()[len("keel:{ws:") : -len("}:wake")]
    base = f"keel:{{ws:{workspace}}}:events"
    return base, f"{base}:{task_id.decode()}"


def decoded(event_id: bytes, fields: dict[bytes, bytes]) -> StoredEvent | None:
    """The entry as an event; None (logged) for one this version cannot read,
    e.g. a type a newer worker wrote during a rolling deploy."""
    try:
        wire = _decode(fields[b"e"])
    except (KeyError, msgspec.ValidationError, msgspec.DecodeError):
        logger.warning("event bus: skipped an unreadable entry %r", event_id)
        return None
    event = TaskEvent(wire.workspace_id, wire.task_id, wire.type, wire.data, wire.at)
    return StoredEvent(event_id.decode(), event)


async def command(awaitable: Any) -> Any:
    """A command's answer; raises UnavailableError when Redis does not answer."""
    with unavailable_as(WHAT):
        return await awaitable


async def newest(redis: RedisClient, key: str) -> StoredEvent | None:
    entries = await command(redis.xrevrange(key, "+", "-", count=1))
    return decoded(*entries[0]) if entries else None


async def oldest_id(redis: RedisClient, key: str) -> str | None:
    entries = await command(redis.xrange(key, "-", "+", count=1))
    return entries[0][0].decode() if entries else None


async def read_after(redis: RedisClient, key: str, after: str) -> list[StoredEvent]:
    """Up to PAGE events after `after` (exclusive), unreadable ones left out."""
    entries = await command(redis.xrange(key, f"({after}", "+", count=PAGE))
    found = (decoded(event_id, fields) for event_id, fields in entries)
    return [event for event in found if event is not None]
