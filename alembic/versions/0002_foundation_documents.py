"""Foundation documents and their revision history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Documents are keyed (workspace_id, id); a revision row is written in the
same transaction as every change. Revisions have no foreign key to their
document, so that history outlives a deleted document; they go with their
workspace.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from adapters.postgres.rls import READER, WRITER, create_policies

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "foundation_documents",
        sa.Column(
            "workspace_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "workspaces.id", name="foundation_documents_workspace_id_fkey", ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
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
        _now(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="foundation_documents_pkey"),
        sa.CheckConstraint(
            "kind ~ '^[a-z][a-z0-9_.-]{0,63}$'", name="foundation_documents_kind_valid"
        ),
        sa.CheckConstraint(
            "char_length(title) between 1 and 300", name="foundation_documents_title_length"
        ),
        sa.CheckConstraint(
            "jsonb_typeof(content) = 'object' and octet_length(content::text) <= 262144",
            name="foundation_documents_content_object",
        ),
        sa.CheckConstraint("cardinality(tags) <= 50", name="foundation_documents_tags_count"),
    )
    op.create_index(
        "foundation_documents_workspace_id_kind_id_idx",
        "foundation_documents",
        ["workspace_id", "kind", "id"],
    )
    op.create_index(
        "foundation_documents_content_idx",
        "foundation_documents",
        ["content"],
        postgresql_using="gin",
        postgresql_ops={"content": "jsonb_path_ops"},
    )
    op.create_index(
        "foundation_documents_tags_idx", "foundation_documents", ["tags"], postgresql_using="gin"
    )

    op.create_table(
        "foundation_revisions",
        sa.Column(
            "workspace_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "workspaces.id", name="foundation_revisions_workspace_id_fkey", ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
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
        sa.PrimaryKeyConstraint("workspace_id", "id", name="foundation_revisions_pkey"),
        sa.CheckConstraint(
            "action in ('created', 'updated', 'deleted')", name="foundation_revisions_action_valid"
        ),
    )
    op.create_index(
        "foundation_revisions_workspace_id_document_id_version_idx",
        "foundation_revisions",
        ["workspace_id", "document_id", "version"],
    )

    op.execute("grant select, insert, update, delete on foundation_documents to keel_app")
    op.execute("grant select, insert on foundation_revisions to keel_app")
    create_policies(
        "foundation_documents", select=READER, insert=WRITER, update=WRITER, delete=WRITER
    )
    create_policies(
        "foundation_revisions", select=READER, insert=WRITER, update="false", delete="false"
    )


def downgrade() -> None:
    op.drop_table("foundation_revisions")
    op.drop_table("foundation_documents")
