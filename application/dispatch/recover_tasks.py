"""RecoverTasks: tasks whose lease or queue entry was lost are queued again."""

from __future__ import annotations

import logging

from domain.ports import TaskDispatcher

logger = logging.getLogger("keel.dispatch")


class RecoverTasks:
    def __init__(self, dispatcher: TaskDispatcher, redispatch_after_s: float) -> None:
        self._dispatcher, self._after = dispatcher, redispatch_after_s

    async def execute(self) -> int:
        recovered = await self._dispatcher.recover(self._after)
        if recovered:
            logger.info("requeued or re-dispatched %s task(s)", recovered)
        return recovered
