"""The schema as SQLAlchemy Core tables.

Alembic owns the schema (alembic/versions); these tables mirror it for
queries, and `keel db check` compares the two. Constraint names matter:
adapters/postgres/errors.py maps violations to domain errors by name.
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = sa.MetaData()

ROLES = ("owner", "admin", "member", "viewer")


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("email", sa.Text, nullable=True),
    *_timestamps(),
)

workspaces = sa.Table(
    "workspaces",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column(
        "created_by",
        UUID(as_uuid=True),
        sa.ForeignKey("users.id", name="workspaces_created_by_fkey"),
        nullable=False,
    ),
    *_timestamps(),
    sa.CheckConstraint("char_length(name) between 1 and 200", name="workspaces_name_length"),
    sa.Index("workspaces_created_by_idx", "created_by"),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column(
        "workspace_id",
        UUID(as_uuid=True),
        sa.ForeignKey("workspaces.id", name="memberships_workspace_id_fkey", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "user_id",
        UUID(as_uuid=True),
        sa.ForeignKey("users.id", name="memberships_user_id_fkey", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("role", sa.Text, nullable=False),
    *_timestamps(),
    sa.CheckConstraint(f"role in {ROLES!r}", name="memberships_role_valid"),
    sa.Index("memberships_user_id_workspace_id_idx", "user_id", "workspace_id"),
)

foundation_documents = sa.Table(
    "foundation_documents",
    metadata,
    sa.Column(
        "workspace_id",
        UUID(as_uuid=True),
        sa.ForeignKey(
            "workspaces.id", name="foundation_documents_workspace_id_fkey", ondelete="CASCADE"
        ),
        primary_key=True,
    ),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("content", JSONB, nullable=False),
    sa.Column("tags", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column(
        "created_by",
        UUID(as_uuid=True),
        sa.ForeignKey("users.id", name="foundation_documents_created_by_fkey"),
        nullable=False,
    ),
    sa.Column(
        "updated_by",
        UUID(as_uuid=True),
        sa.ForeignKey("users.id", name="foundation_documents_updated_by_fkey"),
        nullable=False,
    ),
    *_timestamps(),
    sa.CheckConstraint("kind ~ '^[a-z][a-z0-9_.-]{0,63}$'", name="foundation_documents_kind_valid"),
    sa.CheckConstraint(
        "char_length(title) between 1 and 300", name="foundation_documents_title_length"
    ),
    sa.CheckConstraint(
        "jsonb_typeof(content) = 'object' and octet_length(content::text) <= 262144",
        name="foundation_documents_content_object",
    ),
    sa.CheckConstraint("cardinality(tags) <= 50", name="foundation_documents_tags_count"),
    sa.Index("foundation_documents_workspace_id_kind_id_idx", "workspace_id", "kind", "id"),
    sa.Index(
        "foundation_documents_content_idx",
        "content",
        postgresql_using="gin",
        postgresql_ops={"content": "jsonb_path_ops"},
    ),
    sa.Index("foundation_documents_tags_idx", "tags", postgresql_using="gin"),
    sa.Index("foundation_documents_created_by_idx", "created_by"),
    sa.Index("foundation_documents_updated_by_idx", "updated_by"),
)

foundation_revisions = sa.Table(
    "foundation_revisions",
    metadata,
    sa.Column(
        "workspace_id",
        UUID(as_uuid=True),
        sa.ForeignKey(
            "workspaces.id", name="foundation_revisions_workspace_id_fkey", ondelete="CASCADE"
        ),
        primary_key=True,
    ),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("document_id", UUID(as_uuid=True), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column(
        "changed_by",
        UUID(as_uuid=True),
        sa.ForeignKey("users.id", name="foundation_revisions_changed_by_fkey"),
        nullable=False,
    ),
    sa.Column(
        "changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("changes", JSONB, nullable=True),
    sa.CheckConstraint(
        "action in ('created', 'updated', 'deleted')", name="foundation_revisions_action_valid"
    ),
    sa.Index(
        "foundation_revisions_workspace_id_document_id_version_idx",
        "workspace_id",
        "document_id",
        "version",
    ),
    sa.Index("foundation_revisions_changed_by_idx", "changed_by"),
)

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
    *_timestamps(),
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
    *_timestamps(),
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
