"""Every function in Keel's schemas pins its search_path.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

The SECURITY DEFINER functions always did; the three that run with the
caller's rights (`app_user_id`, `app_workspace_id`, `enter_tenant`) read the
caller's, as database linters for RLS deployments point out. Their bodies
name only pg_catalog's functions, so `pg_catalog, pg_temp` changes nothing
they do. A SET clause restores only its own setting when the function
returns: `enter_tenant`'s transaction-local role and variables still last
until the caller's transaction ends (the stairway seed checks it).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = (
    "keel_private.app_user_id()",
    "keel_private.app_workspace_id()",
    "keel_worker.enter_tenant(uuid, uuid)",
)


def upgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"alter function {function} set search_path = pg_catalog, pg_temp")


def downgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"alter function {function} reset search_path")
