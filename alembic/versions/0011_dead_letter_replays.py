"""Dead letters can be replayed: a fresh attempt budget, and the kind on the queue.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

- `tasks.budget_from`: the attempts already made when the current budget of
  `max_attempts` began (0; a replay sets it to `attempts`). Attempts keep
  counting up, so every attempt keeps its own queue job (`<task>.<attempt>`)
  and history rows; a task may retry while `attempts - budget_from <
  max_attempts`. recover_tasks (0004) fails a lost attempt on the same rule.
- `task_attempts.outcome` may be `replayed`: the row a replay writes, with the
  attempt it replayed.
- dispatch_tasks (0009's, with the trace) also returns the task's kind: the
  queue job is named after it, as dashboards list jobs by name.
- keel_worker.replay_task: a retried dead letter (BullMQ's `job.retry()`)
  replays its task, as 0005's functions do their changes: SECURITY INVOKER,
  as keel_app in the task's own tenant context, guarded by (status, attempt):
  only the dead letter of the task's last attempt replays it, once.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OUTCOMES = "'started', 'succeeded', 'failed', 'retrying', 'cancelled', 'lost'"
REPLAY = "keel_worker.replay_task(uuid, uuid, uuid, integer, uuid)"
# What a replay resets (PgTaskRepository.replay makes the same change for an
# owner, through a unit of work).
REPLAYED = """status = 'queued', budget_from = t.attempts, result = null, error = null,
                 progress = 0, cached = false, cancel_requested = false,
                 finished_at = null, lease_expires_at = null, dispatched_at = null,
                 available_at = now(), updated_at = now()"""

_DISPATCH = """
    create function keel_private.dispatch_tasks(batch integer)
    returns table (workspace_id uuid, id uuid, created_by uuid, attempts integer,
                   priority integer, delay_ms integer, trace_context text{kind})
    language sql volatile security definer set search_path = pg_catalog, pg_temp
    as $$
      update public.tasks t set dispatched_at = now()
       where (t.workspace_id, t.id) in (
             select q.workspace_id, q.id from public.tasks q
              where q.status = 'queued' and q.dispatched_at is null
              order by q.available_at limit batch
              for update skip locked)
      returning t.workspace_id, t.id, t.created_by, t.attempts, t.priority,
                greatest(0, ceil(extract(epoch from t.available_at - now()) * 1000))::integer,
                t.trace_context{kind_column}
    $$
"""

_RECOVER = """
    create or replace function keel_private.recover_tasks(redispatch_after interval)
    returns integer
    language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
    as $$
    declare recovered integer := 0; n integer;
    begin
      redispatch_after := greatest(redispatch_after, interval '1 second');
      with lost as (
        update public.tasks t set
               status = case when {spent} >= t.max_attempts then 'failed' else 'queued' end,
               error = 'the worker running this attempt stopped answering',
               finished_at = case when {spent} >= t.max_attempts then now() end,
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


def _dispatch(with_kind: bool) -> None:
    op.execute("drop function keel_private.dispatch_tasks(integer)")
    op.execute(
        _DISPATCH.format(
            kind=", kind text" if with_kind else "", kind_column=", t.kind" if with_kind else ""
        )
    )
    op.execute("alter function keel_private.dispatch_tasks(integer) owner to keel_guard")
    op.execute("revoke all on function keel_private.dispatch_tasks(integer) from public")
    op.execute("grant execute on function keel_private.dispatch_tasks(integer) to keel_dispatcher")


def upgrade() -> None:
    op.execute("alter table tasks add column budget_from integer not null default 0")
    op.execute(
        "alter table tasks add constraint tasks_budget_from_range"
        " check (budget_from between 0 and attempts)"
    )
    op.execute("alter table task_attempts drop constraint task_attempts_outcome_valid")
    op.execute(
        "alter table task_attempts add constraint task_attempts_outcome_valid"
        f" check (outcome in ({_OUTCOMES}, 'replayed'))"
    )
    _dispatch(with_kind=True)
    op.execute(_RECOVER.format(spent="t.attempts - t.budget_from"))
    op.execute(
        f"""
        create function keel_worker.replay_task(
          p_workspace uuid, p_task uuid, p_creator uuid, p_attempt integer, p_history uuid)
        returns setof public.tasks
        language plpgsql volatile security invoker set search_path = pg_catalog, pg_temp
        as $$
        declare replayed public.tasks;
        begin
          perform keel_worker.enter_tenant(p_workspace, p_creator);
          update public.tasks t set {REPLAYED}
           where t.workspace_id = p_workspace and t.id = p_task and t.created_by = p_creator
             and t.status = 'failed' and t.attempts = p_attempt
          returning t.* into replayed;
          if not found then
            return;
          end if;
          insert into public.task_attempts (workspace_id, id, task_id, attempt, outcome)
          values (p_workspace, p_history, p_task, p_attempt, 'replayed');
          notify keel_tasks;  -- pg_notify is no runtime role's since 0010
          return next replayed;
        end
        $$
        """
    )
    op.execute(f"grant execute on function {REPLAY} to public")


def downgrade() -> None:
    op.execute(f"drop function {REPLAY}")
    op.execute(_RECOVER.format(spent="t.attempts"))
    _dispatch(with_kind=False)
    op.execute("delete from task_attempts where outcome = 'replayed'")
    op.execute("alter table task_attempts drop constraint task_attempts_outcome_valid")
    op.execute(
        "alter table task_attempts add constraint task_attempts_outcome_valid"
        f" check (outcome in ({_OUTCOMES}))"
    )
    op.execute("alter table tasks drop column budget_from")
