"""AI tasks and the history of their attempts."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from adapters.postgres.tables.base import metadata, timestamps

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column(
        "workspace_id",
        UUID(as_uuid=True),
        sa.ForeignKey("workspaces.id", name="tasks_workspace_id_fkey", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="queued"),
    sa.Column("input", JSONB, nullable=False),
    sa.Column("result", JSONB, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="5"),
    # attempts made when the current budget of max_attempts began (a replay)
    sa.Column("budget_from", sa.Integer, nullable=False, server_default="0"),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cached", sa.Boolean, nullable=False, server_default="false"),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default="false"),
    sa.Column("idempotency_key", sa.Text, nullable=True),
    sa.Column("request_hash", sa.Text, nullable=True),
    sa.Column(
        "created_by",
        UUID(as_uuid=True),
        sa.ForeignKey("users.id", name="tasks_created_by_fkey"),
        nullable=False,
    ),
    *timestamps(),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column(
        "available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    # W3C traceparent of the creating request: the worker continues its trace.
    sa.Column("trace_context", sa.Text, nullable=True),
    sa.CheckConstraint("length(trace_context) <= 512", name="tasks_trace_context_size"),
    sa.CheckConstraint(
        "status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
        name="tasks_status_valid",
    ),
    sa.CheckConstraint("kind in ('generate', 'summarize')", name="tasks_kind_valid"),
    sa.CheckConstraint("max_attempts between 1 and 20", name="tasks_max_attempts_range"),
    sa.CheckConstraint("priority between 0 and 10", name="tasks_priority_range"),
    sa.CheckConstraint("progress between 0 and 100", name="tasks_progress_range"),
    sa.CheckConstraint("budget_from between 0 and attempts", name="tasks_budget_from_range"),
    sa.Index(
        "tasks_workspace_id_idempotency_key_idx",
        "workspace_id",
        "idempotency_key",
        unique=True,
        postgresql_where=sa.text("idempotency_key is not null"),
    ),
    sa.Index("tasks_workspace_id_status_id_idx", "workspace_id", "status", "id"),
    sa.Index(
        "tasks_undispatched_idx",
        "available_at",
        postgresql_where=sa.text("status = 'queued' and dispatched_at is null"),
    ),
    sa.Index(
        "tasks_leased_idx", "lease_expires_at", postgresql_where=sa.text("status = 'running'")
    ),
    sa.Index("tasks_created_by_idx", "created_by"),
)


task_attempts = sa.Table(
    "task_attempts",
    metadata,
    sa.Column(
        "workspace_id",
        UUID(as_uuid=True),
        sa.ForeignKey("workspaces.id", name="task_attempts_workspace_id_fkey", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("task_id", UUID(as_uuid=True), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("delay_ms", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.ForeignKeyConstraint(
        ["workspace_id", "task_id"],
        ["tasks.workspace_id", "tasks.id"],
        name="task_attempts_task_fkey",
        ondelete="CASCADE",
    ),
    sa.CheckConstraint(
        "outcome in ('started', 'succeeded', 'failed', 'retrying', 'cancelled', 'lost',"
        " 'replayed')",
        name="task_attempts_outcome_valid",
    ),
    sa.Index("task_attempts_workspace_id_task_id_idx", "workspace_id", "task_id", "attempt"),
)
