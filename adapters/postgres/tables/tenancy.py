"""Users, workspaces and who belongs to which (with what role)."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from adapters.postgres.tables.base import metadata, timestamps

ROLES = ("owner", "admin", "member", "viewer")

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("email", sa.Text, nullable=True),
    *timestamps(),
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
    *timestamps(),
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
    *timestamps(),
    sa.CheckConstraint(f"role in {ROLES!r}", name="memberships_role_valid"),
    sa.Index("memberships_user_id_workspace_id_idx", "user_id", "workspace_id"),
)
