"""A workspace's foundation documents and their revision history."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from adapters.postgres.tables.base import metadata, timestamps

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
    *timestamps(),
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
