"""Each deployment's database opens only to its own login roles; the runtime
roles lose large objects and `pg_notify`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

- keel_app, keel_guard and keel_dispatcher exist once per cluster, and PUBLIC
  may CONNECT to every database by default: a login role made for another
  Keel database on the same cluster could open this one and, being in
  keel_app, read its tenants. CONNECT is revoked from PUBLIC here and
  granted by `keel db login-role` to each login role it makes, on its own
  database only. Never to the shared roles: every deployment's login roles
  are members of them. (TEMPORARY went in 0004.) Login roles made before
  this revision need `keel db login-role NAME` again to regain CONNECT.
- Large objects live outside row-level security, and `pg_notify` lets any
  session post on the workers' channel: no runtime role needs either, so
  EXECUTE on them is revoked from PUBLIC in this database (function
  privileges are per database). Only a superuser may change pg_catalog's
  privileges: run by anyone else (managed Postgres), this step is skipped
  with a warning and `keel doctor` reports it. Wake-ups use a plain
  `NOTIFY` statement now, which needs no privilege: the workers take it as a
  hint to look at the outbox and never read its payload.
  Deploy code of this version before running this migration: older code
  calls `pg_notify` when it creates a task.
"""

import logging
from collections.abc import Sequence

from alembic import context, op
from sqlalchemy import text

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

# PUBLIC's EXECUTE grants on these in a fresh PG 13-17 database
# (lo_import and lo_export are superuser-only already).
CATALOG_FUNCTIONS = (
    "lo_create(oid)",
    "lo_creat(integer)",
    "lo_from_bytea(oid, bytea)",
    "lo_open(oid, integer)",
    "lo_close(integer)",
    "loread(integer, integer)",
    "lowrite(integer, bytea)",
    "lo_lseek(integer, integer, integer)",
    "lo_lseek64(integer, bigint, integer)",
    "lo_tell(integer)",
    "lo_tell64(integer)",
    "lo_truncate(integer, integer)",
    "lo_truncate64(integer, bigint)",
    "lo_get(oid)",
    "lo_get(oid, bigint, integer)",
    "lo_put(oid, bigint, bytea)",
    "lo_unlink(oid)",
    "pg_notify(text, text)",
)

_DATABASE = """
    do $$
    begin
      execute format('{action} connect on database %I {direction} public', current_database());
    end
    $$
"""

_RETRY = """
    create or replace function keel_worker.retry_task(
      p_workspace uuid, p_task uuid, p_creator uuid, p_attempt integer, p_delay_ms integer,
      p_error text, p_history uuid)
    returns boolean
    language plpgsql volatile security invoker set search_path = pg_catalog, pg_temp
    as $$
    begin
      perform keel_worker.enter_tenant(p_workspace, p_creator);
      update public.tasks t set
             status = 'queued', error = p_error,
             available_at = now() + make_interval(secs => p_delay_ms / 1000.0),
             dispatched_at = null, lease_expires_at = null, updated_at = now()
       where t.workspace_id = p_workspace and t.id = p_task and t.created_by = p_creator
         and t.status = 'running' and t.attempts = p_attempt;
      if not found then
        return false;
      end if;
      insert into public.task_attempts
             (workspace_id, id, task_id, attempt, outcome, delay_ms, error)
      values (p_workspace, p_history, p_task, p_attempt, 'retrying', p_delay_ms, p_error);
      {wake};
      return true;
    end
    $$
"""


def _may_change_catalog() -> bool:
    """pg_catalog's functions belong to the bootstrap superuser."""
    if context.is_offline_mode():
        return True
    superuser = op.get_bind().scalar(
        text("select rolsuper from pg_roles where rolname = current_user")
    )
    if not superuser:
        log.warning(
            "0010: not a superuser, so EXECUTE on the large-object functions and pg_notify"
            " stays granted to PUBLIC; a superuser can revoke it later (see SECURITY.md)"
        )
    return bool(superuser)


def _public_may_connect() -> bool:
    if context.is_offline_mode():
        return False
    return bool(
        op.get_bind().scalar(
            text("select has_database_privilege('public', current_database(), 'connect')")
        )
    )


def upgrade() -> None:
    op.execute(_RETRY.replace("{wake}", "notify keel_tasks"))
    op.execute(_DATABASE.format(action="revoke", direction="from"))
    if _public_may_connect():
        log.warning(
            "0010: PUBLIC may still CONNECT to this database: only its owner can revoke that"
            " (REVOKE CONNECT ON DATABASE ... FROM PUBLIC)"
        )
    elif not context.is_offline_mode():
        log.warning(
            "0010: only roles granted CONNECT may open this database now: run `keel db"
            " login-role NAME` again for each login role of this deployment made before it"
        )
    if _may_change_catalog():
        for function in CATALOG_FUNCTIONS:
            op.execute(f"revoke execute on function pg_catalog.{function} from public")


def downgrade() -> None:
    if _may_change_catalog():
        for function in CATALOG_FUNCTIONS:
            op.execute(f"grant execute on function pg_catalog.{function} to public")
    op.execute(_DATABASE.format(action="grant", direction="to"))
    op.execute(_RETRY.replace("{wake}", "perform pg_notify('keel_tasks', '')"))
