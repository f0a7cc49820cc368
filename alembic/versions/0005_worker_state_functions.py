"""The worker's state changes as SECURITY INVOKER functions: one round trip each.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

A worker's claim was six round trips (BEGIN, tenant switch, advisory lock,
guarded UPDATE, history INSERT, COMMIT) and its finish five. Each change is
now one call of a plpgsql function, run as its own (implicit) transaction:

- SECURITY INVOKER: the function has no privilege of its own. Its first
  action is what every unit of work begins with — become keel_app and set
  app.user_id / app.workspace_id transaction-locally — so the statements
  after it run as keel_app under row-level security, in the task's own
  tenant context. A role that is not a member of keel_app fails right there.
- Each statement is the same guarded UPDATE (status and attempt) as before,
  with its attempt-history row in the same transaction.
- The role and the variables are transaction-local, and the worker makes
  each call outside any explicit transaction (its own implicit one), so they
  end with the call and nothing reaches the next user of a pooled connection.
  (Called inside an explicit transaction they last until it ends, as
  `enter_tenant` does.)

Login roles are NOINHERIT (no privilege until they become keel_app), so the
schema and its functions are usable by PUBLIC: calling them confers nothing
a member of keel_app could not do with `set_config` itself.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HEADER = "language plpgsql volatile security invoker set search_path = pg_catalog, pg_temp"
_OWNED = """t.workspace_id = p_workspace and t.id = p_task and t.created_by = p_creator
     and t.status = 'running' and t.attempts = p_attempt"""

FUNCTIONS = {
    "enter_tenant(uuid, uuid)": """
        returns void language plpgsql volatile security invoker
        as $$
        begin
          -- What adapters.postgres.uow.enter_tenant does. No SET clause of its
          -- own: the settings last until the caller's function (or
          -- transaction) ends.
          perform set_config('role', 'keel_app', true),
                  set_config('app.user_id', p_creator::text, true),
                  set_config('app.workspace_id', p_workspace::text, true);
        end
        $$""",
    "claim_task(uuid, uuid, uuid, integer, integer, uuid)": f"""
        returns setof public.tasks {_HEADER}
        as $$
        declare claimed public.tasks;
        begin
          perform keel_worker.enter_tenant(p_workspace, p_creator);
          -- One claim at a time per workspace, so the cap holds under concurrency.
          perform pg_advisory_xact_lock(hashtextextended(p_workspace::text, 1));
          update public.tasks t set
                 status = 'running', attempts = t.attempts + 1,
                 started_at = coalesce(t.started_at, now()),
                 lease_expires_at = now() + make_interval(secs => p_lease_ms / 1000.0),
                 dispatched_at = null, updated_at = now()
           where t.workspace_id = p_workspace and t.id = p_task and t.created_by = p_creator
             and t.status = 'queued' and not t.cancel_requested
             and (select count(*) from public.tasks r
                   where r.workspace_id = p_workspace and r.status = 'running') < p_max_running
          returning t.* into claimed;
          if found then
            insert into public.task_attempts (workspace_id, id, task_id, attempt, outcome)
            values (p_workspace, p_history, p_task, claimed.attempts, 'started');
            return next claimed;
            return;
          end if;
          -- Not claimed: the row if it still waits (the workspace is at its cap),
          -- nothing if there is nothing to run.
          return query
            select * from public.tasks t
             where t.workspace_id = p_workspace and t.id = p_task and t.created_by = p_creator
               and t.status = 'queued' and not t.cancel_requested;
        end
        $$""",
    "heartbeat_task(uuid, uuid, uuid, integer, integer, integer)": f"""
        returns boolean {_HEADER}
        as $$
        declare asked boolean;
        begin
          perform keel_worker.enter_tenant(p_workspace, p_creator);
          update public.tasks t set
                 lease_expires_at = now() + make_interval(secs => p_lease_ms / 1000.0),
                 progress = greatest(t.progress, p_progress), updated_at = now()
           where {_OWNED}
          returning t.cancel_requested into asked;
          return asked;  -- null: the attempt is no longer ours
        end
        $$""",
    "finish_task(uuid, uuid, uuid, integer, text, jsonb, text, boolean, uuid)": f"""
        returns boolean {_HEADER}
        as $$
        begin
          perform keel_worker.enter_tenant(p_workspace, p_creator);
          update public.tasks t set
                 status = p_status, result = p_result, error = p_error, cached = p_cached,
                 progress = case when p_status = 'succeeded' then 100 else t.progress end,
                 finished_at = now(), lease_expires_at = null, updated_at = now()
           where {_OWNED};
          if not found then
            return false;
          end if;
          insert into public.task_attempts (workspace_id, id, task_id, attempt, outcome, error)
          values (p_workspace, p_history, p_task, p_attempt, p_status, p_error);
          return true;
        end
        $$""",
    "retry_task(uuid, uuid, uuid, integer, integer, text, uuid)": f"""
        returns boolean {_HEADER}
        as $$
        begin
          perform keel_worker.enter_tenant(p_workspace, p_creator);
          update public.tasks t set
                 status = 'queued', error = p_error,
                 available_at = now() + make_interval(secs => p_delay_ms / 1000.0),
                 dispatched_at = null, lease_expires_at = null, updated_at = now()
           where {_OWNED};
          if not found then
            return false;
          end if;
          insert into public.task_attempts
                 (workspace_id, id, task_id, attempt, outcome, delay_ms, error)
          values (p_workspace, p_history, p_task, p_attempt, 'retrying', p_delay_ms, p_error);
          perform pg_notify('keel_tasks', '');
          return true;
        end
        $$""",
    "postpone_task(uuid, uuid, uuid, integer)": f"""
        returns void {_HEADER}
        as $$
        begin
          perform keel_worker.enter_tenant(p_workspace, p_creator);
          -- The queue keeps the job (delayed); only the row's clock moves, so
          -- the reconciler does not take a waiting task for a lost one.
          update public.tasks t set
                 available_at = now() + make_interval(secs => p_delay_ms / 1000.0),
                 dispatched_at = now()
           where t.workspace_id = p_workspace and t.id = p_task and t.created_by = p_creator
             and t.status = 'queued';
        end
        $$""",
}

_PARAMETERS = {
    "enter_tenant": "p_workspace uuid, p_creator uuid",
    "claim_task": "p_workspace uuid, p_task uuid, p_creator uuid, p_max_running integer,"
    " p_lease_ms integer, p_history uuid",
    "heartbeat_task": "p_workspace uuid, p_task uuid, p_creator uuid, p_attempt integer,"
    " p_lease_ms integer, p_progress integer",
    "finish_task": "p_workspace uuid, p_task uuid, p_creator uuid, p_attempt integer,"
    " p_status text, p_result jsonb, p_error text, p_cached boolean, p_history uuid",
    "retry_task": "p_workspace uuid, p_task uuid, p_creator uuid, p_attempt integer,"
    " p_delay_ms integer, p_error text, p_history uuid",
    "postpone_task": "p_workspace uuid, p_task uuid, p_creator uuid, p_delay_ms integer",
}


def upgrade() -> None:
    op.execute("create schema keel_worker")
    op.execute("revoke all on schema keel_worker from public")
    op.execute("grant usage on schema keel_worker to public")
    for signature, body in FUNCTIONS.items():
        name = signature.split("(")[0]
        op.execute(f"create function keel_worker.{name}({_PARAMETERS[name]}) {body}")
        op.execute(f"grant execute on function keel_worker.{signature} to public")


def downgrade() -> None:
    op.execute("drop schema keel_worker cascade")
