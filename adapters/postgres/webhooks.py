"""Webhooks in Postgres: a workspace's configuration (owners only, under
row-level security), and the delivery outbox that workers claim across
workspaces through migration 0012's definer functions, as keel_dispatcher."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.dispatch import DISPATCHER_ROLE
from adapters.postgres.errors import translated
from adapters.postgres.repositories import Repository
from adapters.postgres.tables import workspace_webhooks
from domain.webhooks import Delivery, Webhook, WebhookSaved

_PUBLIC = (
    workspace_webhooks.c.url,
    workspace_webhooks.c.created_at,
    workspace_webhooks.c.updated_at,
)


def _webhook(workspace_id: UUID, row: sa.Row[tuple[object, ...]]) -> Webhook:
    return Webhook(workspace_id, row.url, row.created_at, row.updated_at)


class PgWebhookRepository(Repository):
    async def get(self, workspace_id: UUID) -> Webhook | None:
        result = await self._execute(
            sa.select(*_PUBLIC).where(workspace_webhooks.c.workspace_id == workspace_id)
        )
        row = result.first()
        return _webhook(workspace_id, row) if row else None

    async def save(self, webhook: Webhook, secret: str, rotate: bool) -> WebhookSaved:
        statement = insert(workspace_webhooks).values(
            workspace_id=webhook.workspace_id, url=webhook.url, secret=secret
        )
        kept = workspace_webhooks.c.secret
        result = await self._execute(
            statement.on_conflict_do_update(
                index_elements=[workspace_webhooks.c.workspace_id],
                set_={
                    "url": statement.excluded.url,
                    "secret": statement.excluded.secret if rotate else kept,
                    "updated_at": sa.func.now(),
                },
            ).returning(*_PUBLIC, sa.literal_column("xmax = 0").label("created"))
        )
        row = result.one()
        return WebhookSaved(
            _webhook(webhook.workspace_id, row),
            created=row.created,
            secret=secret if row.created or rotate else None,
        )

    async def delete(self, workspace_id: UUID) -> bool:
        result = await self._execute(
            sa.delete(workspace_webhooks).where(workspace_webhooks.c.workspace_id == workspace_id)
        )
        return result.rowcount == 1


_AS_DISPATCHER = sa.text("select set_config('role', :role, true)")
_CLAIM = sa.text("select * from keel_private.claim_webhook_deliveries(:batch, :lease_ms, :max)")
_FINISH = sa.text(
    "select keel_private.finish_webhook_delivery(:workspace, :id, :attempt, :outcome, :error,"
    " :retry_ms)"
)


class PgWebhookDeliveries:
    """Each call is one short transaction as keel_dispatcher: a claim commits
    its leases before anything is sent."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def claim(self, batch: int, lease_s: float, max_attempts: int) -> list[Delivery]:
        with translated():
            async with self._engine.connect() as conn, conn.begin():
                await conn.execute(_AS_DISPATCHER, {"role": DISPATCHER_ROLE})
                rows = await conn.execute(
                    _CLAIM, {"batch": batch, "lease_ms": int(lease_s * 1000), "max": max_attempts}
                )
                return [
                    Delivery(
                        row.workspace_id, row.id, row.attempts, row.url, row.secret, row.payload
                    )
                    for row in rows
                ]

    async def _finish(
        self, delivery: Delivery, outcome: str, error: str | None, retry_ms: int | None
    ) -> bool:
        with translated():
            async with self._engine.connect() as conn, conn.begin():
                await conn.execute(_AS_DISPATCHER, {"role": DISPATCHER_ROLE})
                done = await conn.scalar(
                    _FINISH,
                    {
                        "workspace": delivery.workspace_id,
                        "id": delivery.id,
                        "attempt": delivery.attempt,
                        "outcome": outcome,
                        "error": error,
                        "retry_ms": retry_ms,
                    },
                )
                return bool(done)

    async def delivered(self, delivery: Delivery) -> bool:
        return await self._finish(delivery, "delivered", None, None)

    async def retry_later(self, delivery: Delivery, delay_ms: int, error: str) -> bool:
        return await self._finish(delivery, "retry", error, delay_ms)

    async def give_up(self, delivery: Delivery, error: str) -> bool:
        return await self._finish(delivery, "failed", error, None)
