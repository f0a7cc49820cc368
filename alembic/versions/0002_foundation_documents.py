"""Foundation documents and their revision history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Documents are keyed (workspace_id, id); a revision row is written in the
same transaction as every change. Revisions have no foreign key to their
document, so that history outlives a deleted document; they go with their
workspace.

The tag and containment filters go through two SECURITY DEFINER functions:
under row-level security Postgres may not use an index for an operator that
is not LEAKPROOF (`@>` on arrays and jsonb is not), so a filtered list would
read the whole table. The functions read only the caller's current
workspace, after checking the caller's membership there, and return ids.
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
    op.execute("grant select on foundation_documents to keel_guard")
    op.execute(
        "create policy foundation_documents_guard_read on foundation_documents"
        " for select to keel_guard using (true)"
    )
    for name, argument, condition in (
        ("foundation_ids_tagged", "tag text", "d.tags @> array[tag]"),
        ("foundation_ids_containing", "probe jsonb", "d.content @> probe"),
    ):
        op.execute(
            f"""
            create function keel_private.{name}({argument}) returns setof uuid
            language sql stable security definer rows 50
            set search_path = pg_catalog, pg_temp
            as $$
              select d.id from public.foundation_documents d
               where d.workspace_id = keel_private.app_workspace_id()
                 and keel_private.caller_role(keel_private.app_workspace_id()) is not null
                 and {condition}
            $$
            """
        )
        signature = f"keel_private.{name}({argument.split()[1]})"
        op.execute(f"alter function {signature} owner to keel_guard")
        op.execute(f"revoke all on function {signature} from public")
        op.execute(f"grant execute on function {signature} to keel_app")
    create_policies(
        "foundation_documents", select=READER, insert=WRITER, update=WRITER, delete=WRITER
    )
    create_policies(
        "foundation_revisions", select=READER, insert=WRITER, update="false", delete="false"
    )


def downgrade() -> None:
    op.execute("drop function keel_private.foundation_ids_tagged(text)")
    op.execute("drop function keel_private.foundation_ids_containing(jsonb)")
    op.drop_table("foundation_revisions")
    op.drop_table("foundation_documents")
