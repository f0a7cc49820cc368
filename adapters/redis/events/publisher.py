"""Publishing a task event: one script appends it to both streams, refreshes
their retention (24 h after the last event) and publishes a wake-up.

A second terminal event of a task is dropped, so every task stream ends
exactly once, until a replay of the task (`task.replayed`, a failed task
queued again) lets it end once more. Publishes made at the same moment go in
one pipeline (adapters/machinery/pipelining.py), each in order. On Redis
Cluster the wake-up is SPUBLISH: the wake channel has the streams' hash tag,
so the script stays in its workspace's slot (hub.py: sharded pub/sub).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from redis.asyncio.cluster import RedisCluster

from adapters.machinery.pipelining import BatchedCommands
from adapters.redis.client import RedisClient, unavailable_as
from adapters.redis.events.wire import WHAT, Wire, encode, stream_key, wake_channel
from domain.events import StreamRef, TaskEvent

PUBLISHED = Counter("keel_events_published", "Task events appended to the bus", ["type"])

# KEYS: workspace stream, task stream, task's "ended" marker.
# ARGV: event JSON, terminal ('1'), reopening ('2') or neither ('0'), workspace
# maxlen, task maxlen, retention s, wake channel, task id. Returns the new id, or
# false for a second terminal event.
_PUBLISH = """
if ARGV[2] == '1' and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[5]) then
  return false
end
if ARGV[2] == '2' then
  redis.call('DEL', KEYS[3])
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[1])
local same = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], id, 'e', ARGV[1])
if type(same) == 'table' and same.err then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('{publish}', ARGV[6], ARGV[7])
return id
"""


class RedisEventPublisher:
    def __init__(self, redis: RedisClient, limits: tuple[int, int, int]) -> None:
        """`limits`: the workspace stream's and a task stream's length, and the
        retention in seconds."""
        self._limits = limits
        publish = "SPUBLISH" if isinstance(redis, RedisCluster) else "PUBLISH"
        self._publish = redis.register_script(_PUBLISH.replace("{publish}", publish))
        self._batch = BatchedCommands(redis)

    async def publish(self, *events: TaskEvent) -> None:
        calls = [self._publish_call(event) for event in events]
        with unavailable_as(WHAT):
            # In order, in one pipeline with whatever else is published now.
            for answer in await self._batch.scripts(self._publish, calls):
                if isinstance(answer, Exception):
                    raise answer
        for event in events:
            PUBLISHED.labels(event.type.value).inc()

    def _publish_call(self, event: TaskEvent) -> tuple[list[str], list[Any]]:
        assert event.task_id is not None, "only stream.reset has no task"
        task = StreamRef(event.workspace_id, event.task_id)
        payload = encode(Wire(event.task_id, event.workspace_id, event.type, event.at, event.data))
        keys = [
            stream_key(StreamRef(event.workspace_id)),
            stream_key(task),
            f"{stream_key(task)}:ended",
        ]
        args = [
            payload,
            "1" if event.type.terminal else "2" if event.type.reopens else "0",
            *self._limits,
            wake_channel(event.workspace_id),
            str(event.task_id),
        ]
        return keys, args
