"""The WebhookSender port over httpcore: one POST per attempt, signed as the
Standard Webhooks specification says (by its reference library).

Headers: `webhook-id` (the delivery's id, the same on every attempt, for
the receiver to deduplicate), `webhook-timestamp` (this attempt's time,
Unix seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of
`id.timestamp.body` with the workspace's secret). No redirects are
followed and no proxy from the environment is used; the answer's body is
never read. The whole attempt is bounded by `timeout_s`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpcore
from standardwebhooks import Webhook as Signer

from adapters.webhooks.network import GuardedBackend, RefusedTargetError
from domain.errors import InvalidInputError, WebhookDeliveryError
from domain.webhooks import Delivery, check_url

USER_AGENT = "keel-webhooks/1"


class StandardWebhookSender:
    def __init__(self, allow_private: bool, timeout_s: float, max_connections: int = 20) -> None:
        self._timeout_s = timeout_s
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=GuardedBackend(allow_private),
            max_connections=max_connections,
            retries=0,
        )

    async def send(self, delivery: Delivery) -> None:
        try:
            check_url(delivery.url)
        except InvalidInputError as error:
            raise WebhookDeliveryError(error.detail) from None
        now = datetime.now(UTC)
        body = delivery.body.encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"user-agent", USER_AGENT.encode()),
            (b"webhook-id", str(delivery.id).encode()),
            (b"webhook-timestamp", str(int(now.timestamp())).encode()),
            (
                b"webhook-signature",
                Signer(delivery.secret).sign(str(delivery.id), now, body).encode(),
            ),
        ]
        timeout = self._timeout_s
        try:
            async with asyncio.timeout(timeout):
                async with self._pool.stream(
                    "POST",
                    delivery.url,
                    headers=headers,
                    content=body,
                    extensions={
                        "timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)
                    },
                ) as response:
                    status = response.status
        except RefusedTargetError as error:
            raise WebhookDeliveryError(str(error)) from None
        except (TimeoutError, httpcore.TimeoutException):
            raise WebhookDeliveryError(f"no answer within {timeout:g} s") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as error:
            raise WebhookDeliveryError(
                f"connection failed: {error or type(error).__name__}"
            ) from None
        if not 200 <= status < 300:
            raise WebhookDeliveryError(f"the receiver answered HTTP {status}")

    async def aclose(self) -> None:
        await self._pool.aclose()
