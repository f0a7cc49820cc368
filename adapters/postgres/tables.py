"""The schema as SQLAlchemy Core tables.

Alembic owns the schema (alembic/versions); these tables mirror it for
queries, and `keel db check` compares the two. Constraint names matter:
adapters/postgres/errors.py maps violations to domain errors by name.
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

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
