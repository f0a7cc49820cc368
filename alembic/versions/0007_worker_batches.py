"""Claims and finishes of several tasks in one call.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

Under load a worker process claims (and finishes) several tasks at the same
moment; one round trip each cost it a `send` and a connection checkout per
task. `claim_tasks` and `finish_tasks` take arrays and call 0005's
`claim_task` / `finish_task` once per task, in one transaction: each call
still first becomes keel_app with that task's own `app.user_id` /
`app.workspace_id` (transaction-local; the next call sets its own before any
statement), then runs the same guarded UPDATE and history INSERT under
row-level security. Nothing is written twice: the bodies are 0005's.

The tasks are taken in a fixed order (workspace, then task), so two batches
that lock the same workspaces and rows wait for each other in one
direction only, never in a cycle.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HEADER = "language plpgsql volatile security invoker set search_path = pg_catalog, pg_temp"
_ORDER = """select u.item from unnest(p_workspaces, p_tasks) with ordinality as u(w, t, item)
              order by u.w, u.t, u.item"""

FUNCTIONS = {
    "claim_tasks(uuid[], uuid[], uuid[], integer[], integer[], uuid[])": (
        "p_workspaces uuid[], p_tasks uuid[], p_creators uuid[], p_max_running integer[],"
        " p_lease_ms integer[], p_histories uuid[]",
        f"""
        returns setof public.tasks {_HEADER}
        as $$
        declare i integer;
        begin
          for i in {_ORDER} loop
            return query select * from keel_worker.claim_task(
              p_workspaces[i], p_tasks[i], p_creators[i], p_max_running[i], p_lease_ms[i],
              p_histories[i]);
          end loop;
        end
        $$""",
    ),
    "finish_tasks(uuid[], uuid[], uuid[], integer[], text[], jsonb[], text[], boolean[], uuid[])": (
        "p_workspaces uuid[], p_tasks uuid[], p_creators uuid[], p_attempts integer[],"
        " p_statuses text[], p_results jsonb[], p_errors text[], p_cached boolean[],"
        " p_histories uuid[]",
        f"""
        returns setof uuid {_HEADER}
        as $$
        declare i integer;
        begin
          for i in {_ORDER} loop
            if keel_worker.finish_task(
                 p_workspaces[i], p_tasks[i], p_creators[i], p_attempts[i], p_statuses[i],
                 p_results[i], p_errors[i], p_cached[i], p_histories[i]) then
              return next p_tasks[i];
            end if;
          end loop;
        end
        $$""",
    ),
}


def upgrade() -> None:
    for signature, (parameters, body) in FUNCTIONS.items():
        name = signature.split("(")[0]
        op.execute(f"create function keel_worker.{name}({parameters}) {body}")
        op.execute(f"grant execute on function keel_worker.{signature} to public")


def downgrade() -> None:
    for signature in FUNCTIONS:
        op.execute(f"drop function keel_worker.{signature}")
