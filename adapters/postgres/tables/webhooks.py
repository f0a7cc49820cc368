"""A workspace's webhook and the deliveries of task outcomes to it."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from adapters.postgres.tables.base import metadata, timestamps

workspace_webhooks = sa.Table(
    "workspace_webhooks",
    metadata,
    sa.Column(
        "workspace_id",
        UUID(as_uuid=True),
        sa.ForeignKey(
            "workspaces.id", name="workspace_webhooks_workspace_id_fkey", ondelete="CASCADE"
        ),
        primary_key=True,
    ),
    sa.Column("url", sa.Text, nullable=False),
    # Standard Webhooks' `whsec_<base64>`: readable by owners only (row-level security).
    sa.Column("secret", sa.Text, nullable=False),
    *timestamps(),
    sa.CheckConstraint("char_length(url) between 1 and 2048", name="workspace_webhooks_url"),
    sa.CheckConstraint("secret like 'whsec_%'", name="workspace_webhooks_secret"),
)


webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("workspace_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("task_id", UUID(as_uuid=True), nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column(
        "available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(
        ["workspace_id"],
        ["workspace_webhooks.workspace_id"],
        name="webhook_deliveries_webhook_fkey",
        ondelete="CASCADE",
    ),
    sa.ForeignKeyConstraint(
        ["workspace_id", "task_id"],
        ["tasks.workspace_id", "tasks.id"],
        name="webhook_deliveries_task_fkey",
        ondelete="CASCADE",
    ),
    sa.CheckConstraint(
        "status in ('pending', 'delivered', 'failed')", name="webhook_deliveries_status_valid"
    ),
    sa.Index("webhook_deliveries_workspace_id_task_id_idx", "workspace_id", "task_id"),
    sa.Index(
        "webhook_deliveries_due_idx",
        "available_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
)
