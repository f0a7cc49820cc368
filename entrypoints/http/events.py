"""Live task events over Server-Sent Events (API.md), and stream tickets.

Every message carries `id:` (its position in the stream), `event:` (the
type) and `data:` (JSON). A comment line goes out whenever nothing happened
for a heartbeat period. When the server closes a stream early (the client
fell behind, the process is shutting down, Redis went away) the last message
is a `retry:` hint: EventSource reconnects with Last-Event-ID and misses
nothing (a browser with a ticket opens a new EventSource with a new ticket and
`?last_event_id=`, as /console does: a ticket works once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, Request, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from application.events import Feed, IssueStreamTicket, OpenEventStream
from domain.errors import DomainError, SubscriptionClosedError, UnavailableError
from domain.events import StoredEvent, StreamGrant
from entrypoints.http.auth import Principal
from entrypoints.http.openapi import event_stream, problems
from entrypoints.http.schemas import Body

RETRY_MS = 1000
LastEventId = Annotated[str | None, HeaderParameter(name="Last-Event-ID")]
# A browser that opens a new EventSource (a new ticket after a drop) cannot
# set the header, so the position may come in the query instead.
ResumeAfter = Annotated[str | None, QueryParameter(name="last_event_id")]


class TicketIn(Body):
    task_id: UUID | None = None


class TicketOut(msgspec.Struct, frozen=True):
    ticket: str
    expires_at: datetime


class _Data(msgspec.Struct, frozen=True):
    task_id: UUID | None
    workspace_id: UUID
    type: str
    at: datetime
    data: dict[str, Any]


_encode = msgspec.json.Encoder().encode
_KEEP_ALIVE = ServerSentEventMessage(data=None, comment="keep-alive")


def _message(stored: StoredEvent) -> ServerSentEventMessage:
    event = stored.event
    data = _Data(event.task_id, event.workspace_id, event.type.value, event.at, event.data)
    return ServerSentEventMessage(data=_encode(data), event=event.type.value, id=stored.id)


async def _messages(feed: Feed) -> AsyncIterator[ServerSentEventMessage]:
    try:
        async for event in feed:
            yield _KEEP_ALIVE if event is None else _message(event)
    except SubscriptionClosedError as closed:
        yield ServerSentEventMessage(data=None, comment=f"closed: {closed.detail}", retry=RETRY_MS)
    except UnavailableError:
        yield ServerSentEventMessage(data=None, comment="events unavailable", retry=RETRY_MS)
    except DomainError as refused:
        # No longer allowed (removed from the workspace, the task deleted):
        # the stream ends; a reconnect gets the 404.
        yield ServerSentEventMessage(data=None, comment=f"closed: {refused.detail}")
    finally:
        # Only now, with the last message written (or the client gone), does
        # the stream give its slot back.
        await feed.close()


def _stream(feed: Feed) -> ServerSentEvent:
    """The response; however it ends, it closes the feed (gives the slot back).

    The generator's `finally` does not cover a client gone before the first
    chunk: Litestar then cancels the response before the generator has
    started, so the generator never runs. The background task runs after the
    body in every case the response itself survives.
    """
    return ServerSentEvent(
        _messages(feed), headers={"X-Accel-Buffering": "no"}, background=BackgroundTask(feed.close)
    )


def _grant(request: Request[Any, Any, Any]) -> StreamGrant | None:
    user = request.user
    return user.grant if isinstance(user, Principal) else None


class EventController(Controller):
    path = "/v1/workspaces/{workspace_id:uuid}"
    tags = ["events"]

    @post("/stream-tickets", status_code=201, responses=problems(404, 413, 415, 429))
    async def ticket(
        self,
        workspace_id: FromPath[UUID],
        use_case: FromDishka[IssueStreamTicket],
        data: JSONBody[TicketIn | None] = None,
    ) -> TicketOut:
        ticket, grant = await use_case.execute(data.task_id if data else None)
        return TicketOut(ticket, grant.expires_at)

    @get("/events", responses=event_stream("The workspace's events, as Server-Sent Events"))
    async def workspace_events(
        self,
        workspace_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        use_case: FromDishka[OpenEventStream],
        last_event_id: LastEventId = None,
        resume_after: ResumeAfter = None,
    ) -> ServerSentEvent:
        feed = await use_case.execute(None, last_event_id or resume_after, _grant(request))
        return _stream(feed)

    @get(
        "/tasks/{task_id:uuid}/events",
        responses=event_stream("One task's events, as Server-Sent Events, until it ends"),
    )
    async def task_events(
        self,
        workspace_id: FromPath[UUID],
        task_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        use_case: FromDishka[OpenEventStream],
        last_event_id: LastEventId = None,
        resume_after: ResumeAfter = None,
    ) -> ServerSentEvent:
        feed = await use_case.execute(task_id, last_event_id or resume_after, _grant(request))
        return _stream(feed)
