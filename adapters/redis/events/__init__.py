"""Task events on Redis: capped Streams keep them, pub/sub only wakes listeners.

Written by hand because no library we found resumes a subscriber from a
position: Litestar's channels (pub/sub or stream backends) and broadcaster
hand subscribers bare payloads, without ids, and replay at most "the last N".
Here every event has its stream id, a reconnecting client says where it
stopped, and it gets exactly the events after that.

- wire.py: the keys (a workspace's stream, a task's, its "ended" marker, the
  wake channel) and the stored form of an event;
- publisher.py: publishing, one script per event (both streams, retention,
  the wake-up; a second terminal event dropped);
- hub.py: the per-process hub, one pub/sub connection and one reader for
  every local listener;
- subscription.py: one listener, its backlog then the live events;
- bus.py: RedisEventBus, the EventBus port over the publisher and the hub.
"""

from adapters.redis.events.bus import RedisEventBus
from adapters.redis.events.hub import LISTENERS
from adapters.redis.events.wire import stream_key

__all__ = ["LISTENERS", "RedisEventBus", "stream_key"]
