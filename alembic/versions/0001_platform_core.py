"""Platform core: users, workspaces, memberships, roles, row-level security.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Roles (cluster-wide, created if missing):
- keel_app: NOLOGIN, NOBYPASSRLS. Every runtime transaction runs as it
  (`SET LOCAL ROLE` through set_config); it owns nothing.
- keel_guard: NOLOGIN, NOBYPASSRLS. Owns the few SECURITY DEFINER functions
  that must read memberships past the caller's own policies (the policies
  themselves, and the last-owner trigger); policies let it read, nothing else.

Policy helpers read the tenant variables with nullif(..., ''): a
transaction-local setting reads '' once its transaction has ended.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from adapters.postgres.rls import ROLE, UID, WS, create_policies

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MANAGES = f"({ROLE} = 'owner' or ({ROLE} = 'admin' and role <> 'owner'))"


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


def upgrade() -> None:
    op.execute(
        """
        do $$
        begin
          if not exists (select from pg_roles where rolname = 'keel_app') then
            create role keel_app nologin nobypassrls noinherit;
          end if;
          if not exists (select from pg_roles where rolname = 'keel_guard') then
            create role keel_guard nologin nobypassrls;
          end if;
          -- A non-superuser owner must be a member to hand functions to keel_guard.
          if not (select rolsuper from pg_roles where rolname = current_user) then
            execute format('grant keel_guard to %I', current_user);
          end if;
        end
        $$
        """
    )
    op.create_table(
        "users",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.Text, nullable=True),
        *_timestamps(),
    )
    op.create_table(
        "workspaces",
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
    op.create_table(
        "memberships",
        sa.Column(
            "workspace_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "workspaces.id", name="memberships_workspace_id_fkey", ondelete="CASCADE"
            ),
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
        sa.CheckConstraint(
            "role in ('owner', 'admin', 'member', 'viewer')", name="memberships_role_valid"
        ),
    )
    op.create_index(
        "memberships_user_id_workspace_id_idx", "memberships", ["user_id", "workspace_id"]
    )

    op.execute("create schema keel_private")
    op.execute("revoke all on schema keel_private from public")
    op.execute("grant usage on schema keel_private to keel_app, keel_guard")
    op.execute("grant usage on schema public to keel_app, keel_guard")
    for name in ("user_id", "workspace_id"):
        op.execute(
            f"""
            create function keel_private.app_{name}() returns uuid
            language sql stable parallel safe
            as $$ select nullif(current_setting('app.{name}', true), '')::uuid $$
            """
        )
    op.execute(
        """
        create function keel_private.caller_role(ws uuid) returns text
        language sql stable security definer set search_path = pg_catalog, pg_temp
        as $$
          select m.role from public.memberships m
           where m.workspace_id = ws and m.user_id = keel_private.app_user_id()
        $$
        """
    )
    op.execute(
        """
        create function keel_private.may_claim_ownership(ws uuid) returns boolean
        language sql stable security definer set search_path = pg_catalog, pg_temp
        as $$
          select exists (select 1 from public.workspaces w
                          where w.id = ws and w.created_by = keel_private.app_user_id())
             and not exists (select 1 from public.memberships m where m.workspace_id = ws)
        $$
        """
    )
    op.execute(
        """
        create function keel_private.keep_an_owner() returns trigger
        language plpgsql security definer set search_path = pg_catalog, pg_temp
        as $$
        begin
          if old.role <> 'owner' or (tg_op = 'UPDATE' and new.role = 'owner') then
            return null;
          end if;
          -- Serialise owner changes per workspace; READ COMMITTED gives the
          -- check below a fresh snapshot once the lock is ours, so it sees a
          -- concurrent demotion that committed while we waited.
          perform pg_advisory_xact_lock(hashtextextended(old.workspace_id::text, 0));
          if exists (select 1 from public.workspaces w where w.id = old.workspace_id)
             and not exists (select 1 from public.memberships m
                              where m.workspace_id = old.workspace_id and m.role = 'owner') then
            raise exception 'workspace % would be left without an owner', old.workspace_id
              using errcode = 'check_violation', constraint = 'workspace_keeps_an_owner';
          end if;
          return null;
        end
        $$
        """
    )
    for function in ("caller_role(uuid)", "may_claim_ownership(uuid)", "keep_an_owner()"):
        op.execute(f"alter function keel_private.{function} owner to keel_guard")
        op.execute(f"revoke all on function keel_private.{function} from public")
    op.execute(
        "grant execute on function keel_private.app_user_id(), keel_private.app_workspace_id(),"
        " keel_private.caller_role(uuid), keel_private.may_claim_ownership(uuid) to keel_app"
    )
    op.execute(
        "grant execute on function keel_private.app_user_id(), keel_private.app_workspace_id()"
        " to keel_guard"
    )
    op.execute(
        "create trigger memberships_keep_an_owner after update of role or delete on memberships"
        " for each row execute function keel_private.keep_an_owner()"
    )

    op.execute("grant select, insert, update on users to keel_app")
    op.execute("grant select, insert, update, delete on workspaces, memberships to keel_app")
    op.execute("grant select on workspaces, memberships to keel_guard")
    create_policies(
        "users",
        select=f"id = {UID} or id in (select m.user_id from memberships m)",
        insert=f"id = {UID}",
        update=f"id = {UID}",
        delete="false",
    )
    create_policies(
        "workspaces",
        select=f"id = coalesce({WS}, id)"
        f" and id in (select m.workspace_id from memberships m where m.user_id = {UID})",
        insert=f"created_by = {UID}",
        update=f"id = {WS} and {ROLE} in ('owner', 'admin')",
        delete=f"id = {WS} and {ROLE} = 'owner'",
    )
    create_policies(
        "memberships",
        select=f"user_id = {UID} or (workspace_id = {WS} and {ROLE} is not null)",
        insert=f"(workspace_id = {WS} and {MANAGES})"
        f" or (user_id = {UID} and role = 'owner'"
        " and keel_private.may_claim_ownership(workspace_id))",
        update=f"workspace_id = {WS} and {MANAGES}",
        delete=f"workspace_id = {WS} and (user_id = {UID} or {MANAGES})",
    )
    for table in ("workspaces", "memberships"):
        op.execute(
            f"create policy {table}_guard_read on {table} for select to keel_guard using (true)"
        )


def downgrade() -> None:
    # These policies read memberships: they go first.
    op.execute("drop policy users_select on users")
    op.execute("drop policy workspaces_select on workspaces")
    op.drop_table("memberships")
    op.drop_table("workspaces")
    op.drop_table("users")
    op.execute("drop schema keel_private cascade")
    op.execute("revoke usage on schema public from keel_app, keel_guard")
    op.execute(
        """
        do $$
        declare name text;
        begin
          foreach name in array array['keel_guard', 'keel_app'] loop
            begin
              execute format('drop role if exists %I', name);
            exception when dependent_objects_still_exist then
              raise notice 'role % kept: other databases still use it', name;
            end;
          end loop;
        end
        $$
        """
    )
