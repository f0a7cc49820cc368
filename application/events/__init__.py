"""Live task events for browsers, one use case per module: stream tickets,
and opening an event stream; and publishing committed changes (what the bus
cannot take is kept by an EventBacklog and sent in order when it can).

Opening checks, once, what every request checks (the caller is a member, the
task is in the workspace) and takes one of the user's open-stream slots. The
feed then replays and follows the stream, and yields None whenever nothing
happened for a heartbeat period. A task's feed ends after its terminal event
(unless a replay of the task follows it in the stream: then after the next);
when the task had already ended but its stream lost that event (Redis
restarted empty), the terminal event is published again from Postgres.
"""

from application.events.backlog import EventBacklog
from application.events.feed import Feed
from application.events.issue_stream_ticket import TICKET_TTL_S, IssueStreamTicket
from application.events.open_event_stream import OpenEventStream
from application.events.publishing import publish
from application.events.stream_limits import StreamLimits

__all__ = [
    "TICKET_TTL_S",
    "EventBacklog",
    "Feed",
    "IssueStreamTicket",
    "OpenEventStream",
    "StreamLimits",
    "publish",
]
