"""IssueStreamTicket: a short-lived ticket that opens one event stream."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from application.access import current_workspace
from application.caching import cached_role
from application.events._tasks import load_task
from application.events.stream_limits import StreamLimits
from domain.errors import RateLimitedError
from domain.events import StreamGrant
from domain.ports import Cache, Clock, StreamTickets, UnitOfWork

TICKET_TTL_S = 60.0


class IssueStreamTicket:
    """A stream ticket for the caller. Raises NotFoundError (not a member, no
    such task) or RateLimitedError when the caller holds as many unused
    tickets as one user may (each lapses after TICKET_TTL_S)."""

    def __init__(
        self,
        uow: UnitOfWork,
        cache: Cache,
        tickets: StreamTickets,
        limits: StreamLimits,
        clock: Clock,
    ) -> None:
        self._uow, self._cache, self._tickets, self._clock = uow, cache, tickets, clock
        self._per_user = limits.tickets_per_user

    async def execute(self, task_id: UUID | None) -> tuple[str, StreamGrant]:
        await cached_role(self._uow, self._cache)
        workspace_id = current_workspace(self._uow)
        if task_id is not None:
            await load_task(self._uow, workspace_id, task_id)
        expires_at = self._clock.now() + timedelta(seconds=TICKET_TTL_S)
        grant = StreamGrant(self._uow.caller.user_id, workspace_id, task_id, expires_at)
        ticket = await self._tickets.issue(grant, self._per_user)
        if ticket is None:
            raise RateLimitedError(
                f"at most {self._per_user} unused stream tickets may be held per user",
                retry_after_s=int(TICKET_TTL_S),
                limit=self._per_user,
            )
        return ticket, grant
