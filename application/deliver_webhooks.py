"""The webhook delivery loop's step: claim due deliveries, send each, record
the outcome (delivered, retried with the tasks' backoff, or given up on)."""

from __future__ import annotations

import asyncio
import logging

from application.webhooks import WebhookSettings
from domain.errors import WebhookDeliveryError
from domain.ports import WebhookDeliveries, WebhookSender
from domain.webhooks import Delivery

logger = logging.getLogger("keel.webhooks")


class DeliverWebhooks:
    """Send one batch of due deliveries at once; returns how many were claimed.

    A failed attempt is tried again after the same backoff as a failed task
    attempt, until `max_attempts` attempts failed: then the last error stays
    on the delivery. A sender that dies mid-attempt leaves its lease to
    expire; the attempt counted, and a later claim sends it again (receivers
    deduplicate by the webhook-id header, which stays the same).
    """

    BATCH = 20

    def __init__(
        self, deliveries: WebhookDeliveries, sender: WebhookSender, settings: WebhookSettings
    ) -> None:
        self._deliveries, self._sender, self._settings = deliveries, sender, settings

    async def execute(self) -> int:
        settings = self._settings
        batch = await self._deliveries.claim(self.BATCH, settings.lease_s, settings.max_attempts)
        outcomes = await asyncio.gather(*(self._one(d) for d in batch), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                # Its lease expires and a later claim tries it again.
                raise outcome
        return len(batch)

    async def _one(self, delivery: Delivery) -> None:
        try:
            await self._sender.send(delivery)
        except WebhookDeliveryError as error:
            if delivery.attempt >= self._settings.max_attempts:
                logger.warning("webhook %s given up: %s", delivery.id, error.detail)
                await self._deliveries.give_up(delivery, error.detail)
            else:
                delay_ms = self._settings.backoff.delay_ms(delivery.attempt)
                await self._deliveries.retry_later(delivery, delay_ms, error.detail)
            return
        await self._deliveries.delivered(delivery)
