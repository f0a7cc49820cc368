"""Webhook deliveries and the sender that makes them."""

from __future__ import annotations

from typing import Protocol

from domain.webhooks import Delivery


class WebhookDeliveries(Protocol):
    """The outbox of webhook deliveries, across workspaces (a worker's view).

    A delivery is recorded by the database when its task reaches a final
    state, in that same transaction. Each outcome is guarded by the attempt
    number: False when the attempt's lease ran out and another claim took it.
    """

    async def claim(self, batch: int, lease_s: float, max_attempts: int) -> list[Delivery]:
        """Up to `batch` due deliveries, each now on attempt `attempt` and leased
        for `lease_s` (a claim counts the attempt). A delivery whose last attempt's
        sender stopped answering is given up on here."""
        ...

    async def delivered(self, delivery: Delivery) -> bool: ...

    async def retry_later(self, delivery: Delivery, delay_ms: int, error: str) -> bool: ...

    async def give_up(self, delivery: Delivery, error: str) -> bool:
        """Record the last error; the delivery is not tried again."""
        ...


class WebhookSender(Protocol):
    """Sends one attempt of a delivery, signed (Standard Webhooks)."""

    async def send(self, delivery: Delivery) -> None:
        """Return once the receiver answered 2xx. Raises WebhookDeliveryError for
        any other answer, a timeout, a connection error, or a target that resolves
        to an address webhooks may not reach."""
        ...


class AddressResolver(Protocol):
    """DNS: the addresses a host name stands for."""

    async def resolve(self, host: str, port: int) -> list[str]:
        """IP literals for `host` (itself if it is one). Raises InvalidInputError
        when the name does not resolve."""
        ...
