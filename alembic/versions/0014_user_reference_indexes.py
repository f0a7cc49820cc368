"""Index the columns that reference users.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

`keel doctor` found five foreign keys to `users` that lead no index
(`created_by`, `updated_by`, `changed_by`): deleting or re-keying a user
would scan each of those tables in full, under its lock. The tables may
already be large, so each index is built CONCURRENTLY, outside a
transaction (Alembic's autocommit block).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("workspaces", "created_by"),
    ("foundation_documents", "created_by"),
    ("foundation_documents", "updated_by"),
    ("foundation_revisions", "changed_by"),
    ("tasks", "created_by"),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for table, column in INDEXES:
            op.create_index(
                f"{table}_{column}_idx",
                table,
                [column],
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for table, column in INDEXES:
            op.drop_index(
                f"{table}_{column}_idx",
                table_name=table,
                postgresql_concurrently=True,
                if_exists=True,
            )
