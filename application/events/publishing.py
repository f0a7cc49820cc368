"""Publishing task events for changes that already committed."""

from __future__ import annotations

import logging

from application.retrying import retried
from domain.errors import UnavailableError
from domain.events import TaskEvent
from domain.ports import EventPublisher

logger = logging.getLogger("keel.events")


async def publish(events: EventPublisher, *changes: TaskEvent, deadline_s: float = 2.0) -> None:
    """Publish state changes that already committed, retrying for up to `deadline_s`.

    A bus that stays unreachable loses the events (logged): the change
    stands, and a task's stream still ends, from the database's state. (The
    processes publish through an EventBacklog, which keeps them instead.)
    """
    try:
        await retried(lambda: events.publish(*changes), deadline_s=deadline_s)
    except UnavailableError as error:
        kinds = ", ".join(sorted({change.type.value for change in changes}))
        logger.warning("%s task event(s) (%s) not published: %s", len(changes), kinds, error.detail)
