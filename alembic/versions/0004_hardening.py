"""Hardening after review: no temporary tables for anyone, and the outbox
functions only for the workers' role.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

- A temporary table shadows a public one for the rest of its session, without
  row-level security, and a pooled connection carries it to the next tenant:
  TEMPORARY is revoked from PUBLIC on this database.
- dispatch_tasks and recover_tasks see every workspace: they move from keel_app
  (every HTTP request) to keel_dispatcher, a role only workers' login roles
  get. recover_tasks no longer accepts a re-dispatch interval under a second,
  and fails a waiting task whose creator may no longer write in its workspace
  (no worker could claim it under row-level security: it would be dispatched
  again forever).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = ("keel_private.dispatch_tasks(integer)", "keel_private.recover_tasks(interval)")


def upgrade() -> None:
    op.execute(
        """
        do $$
        begin
          execute format('revoke temporary on database %I from public', current_database());
          if not exists (select from pg_roles where rolname = 'keel_dispatcher') then
            create role keel_dispatcher nologin nobypassrls noinherit;
          end if;
        end
        $$
        """
    )
    op.execute("grant usage on schema keel_private to keel_dispatcher")
    for function in FUNCTIONS:
        op.execute(f"revoke execute on function {function} from keel_app")
        op.execute(f"grant execute on function {function} to keel_dispatcher")
    op.execute(
        """
        create or replace function keel_private.recover_tasks(redispatch_after interval)
        returns integer
        language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
        as $$
        declare recovered integer := 0; n integer;
        begin
          redispatch_after := greatest(redispatch_after, interval '1 second');
          with lost as (
            update public.tasks t set
                   status = case when t.attempts >= t.max_attempts then 'failed' else 'queued' end,
                   error = 'the worker running this attempt stopped answering',
                   finished_at = case when t.attempts >= t.max_attempts then now() end,
                   dispatched_at = null, lease_expires_at = null, available_at = now(),
                   updated_at = now()
             where t.status = 'running' and t.lease_expires_at < now()
            returning t.workspace_id, t.id, t.attempts)
          insert into public.task_attempts (workspace_id, id, task_id, attempt, outcome, error)
          select l.workspace_id, gen_random_uuid(), l.id, l.attempts, 'lost', 'lease expired'
            from lost l;
          get diagnostics n = row_count;
          recovered := recovered + n;
          update public.tasks t set
                 status = 'failed', finished_at = now(), dispatched_at = null, updated_at = now(),
                 error = 'its creator can no longer write in this workspace'
           where t.status = 'queued' and t.dispatched_at < now() - redispatch_after
             and not exists (
                 select 1 from public.memberships m
                  where m.workspace_id = t.workspace_id and m.user_id = t.created_by
                    and m.role in ('owner', 'admin', 'member'));
          get diagnostics n = row_count;
          recovered := recovered + n;
          update public.tasks t set dispatched_at = null
           where t.status = 'queued' and t.dispatched_at < now() - redispatch_after;
          get diagnostics n = row_count;
          return recovered + n;
        end
        $$
        """
    )


def downgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"revoke execute on function {function} from keel_dispatcher")
        op.execute(f"grant execute on function {function} to keel_app")
    op.execute("revoke usage on schema keel_private from keel_dispatcher")
    op.execute(
        """
        do $$
        begin
          execute format('grant temporary on database %I to public', current_database());
          begin
            drop role if exists keel_dispatcher;
          exception when dependent_objects_still_exist then
            raise notice 'role keel_dispatcher kept: other databases still use it';
          end;
        end
        $$
        """
    )
