"""caller_role in plpgsql, so that its plan is cached per session.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

Every row-level security policy asks keel_private.caller_role() for the
caller's role in the workspace. As a SQL function that cannot be inlined
(SECURITY DEFINER, SET search_path) its body was parsed and planned again
in every statement that used it: a worker's claim and finish spent about
1.5 ms of Postgres CPU per task, half of it there. A plpgsql function keeps
its plan for the session. Same query, same owner (keel_guard), same rights,
same answer: the role, or NULL for a non-member ((workspace_id, user_id) is
the primary key of memberships, so there is at most one row).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        create or replace function keel_private.caller_role(ws uuid) returns text
        language plpgsql stable security definer set search_path = pg_catalog, pg_temp
        as $$
        begin
          return (select m.role from public.memberships m
                   where m.workspace_id = ws and m.user_id = keel_private.app_user_id());
        end
        $$
        """
    )


def downgrade() -> None:
    # A function cannot change its language in place: drop and re-create would
    # take the policies with it, so 0001's SQL body is restored by replacing it.
    op.execute(
        """
        create or replace function keel_private.caller_role(ws uuid) returns text
        language sql stable security definer set search_path = pg_catalog, pg_temp
        as $$
          select m.role from public.memberships m
           where m.workspace_id = ws and m.user_id = keel_private.app_user_id()
        $$
        """
    )
