"""Heartbeats of several tasks in one call.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

A running task checks in (lease and progress) every half second while its
model streams, and tasks that start together check in together: one round
trip and one pooled connection each. `heartbeat_tasks` takes arrays and
calls 0005's `heartbeat_task` once per task, in one transaction, as 0007's
`claim_tasks` / `finish_tasks` do: each call first becomes keel_app with
that task's own `app.user_id` / `app.workspace_id`, then runs the same
guarded UPDATE under row-level security, and the tasks are taken in the
same (workspace, task) order as a batch of claims or finishes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "heartbeat_tasks(uuid[], uuid[], uuid[], integer[], integer[], integer[])"


def upgrade() -> None:
    op.execute(
        """
        create function keel_worker.heartbeat_tasks(
          p_workspaces uuid[], p_tasks uuid[], p_creators uuid[], p_attempts integer[],
          p_lease_ms integer[], p_progress integer[])
        returns table (task uuid, asked boolean)
        language plpgsql volatile security invoker set search_path = pg_catalog, pg_temp
        as $$
        declare i integer;
        begin
          -- asked: the cancel flag, null when the attempt is no longer the caller's
          for i in select u.item from unnest(p_workspaces, p_tasks) with ordinality as u(w, t, item)
                   order by u.w, u.t, u.item loop
            task := p_tasks[i];
            asked := keel_worker.heartbeat_task(
              p_workspaces[i], p_tasks[i], p_creators[i], p_attempts[i], p_lease_ms[i],
              p_progress[i]);
            return next;
          end loop;
        end
        $$
        """
    )
    op.execute(f"grant execute on function keel_worker.{SIGNATURE} to public")


def downgrade() -> None:
    op.execute(f"drop function keel_worker.{SIGNATURE}")
