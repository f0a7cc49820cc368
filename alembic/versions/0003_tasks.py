"""AI tasks: the task table (its own outbox), attempt history, recovery functions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

A task row with status 'queued' and no `dispatched_at` IS the enqueue intent:
it commits with the task, so nothing accepted can be lost between Postgres
and Redis. The relay moves such rows to the queue; the reconciler puts back
tasks whose queue entry vanished or whose worker lost its lease. Both must
see every workspace, so they go through two narrow SECURITY DEFINER
functions that change only dispatch and lease columns, never task content.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from adapters.postgres.rls import READER, UID, WRITER, create_policies

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "('queued', 'running', 'succeeded', 'failed', 'cancelled')"


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=None if nullable else sa.func.now(),
    )


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column(
            "workspace_id",
            UUID(as_uuid=True),
            sa.ForeignKey("workspaces.id", name="tasks_workspace_id_fkey", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="queued"),
        sa.Column("input", JSONB, nullable=False),
        sa.Column("result", JSONB, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="5"),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cached", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("idempotency_key", sa.Text, nullable=True),
        sa.Column("request_hash", sa.Text, nullable=True),
        sa.Column(
            "created_by",
            UUID(as_uuid=True),
            sa.ForeignKey("users.id", name="tasks_created_by_fkey"),
            nullable=False,
        ),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _ts("started_at"),
        _ts("finished_at"),
        _ts("available_at", nullable=False),
        _ts("dispatched_at"),
        _ts("lease_expires_at"),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="tasks_pkey"),
        sa.CheckConstraint(f"status in {STATUSES}", name="tasks_status_valid"),
        sa.CheckConstraint("kind in ('generate', 'summarize')", name="tasks_kind_valid"),
        sa.CheckConstraint("max_attempts between 1 and 20", name="tasks_max_attempts_range"),
        sa.CheckConstraint("priority between 0 and 10", name="tasks_priority_range"),
        sa.CheckConstraint("progress between 0 and 100", name="tasks_progress_range"),
    )
    op.create_index(
        "tasks_workspace_id_idempotency_key_idx",
        "tasks",
        ["workspace_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key is not null"),
    )
    op.create_index("tasks_workspace_id_status_id_idx", "tasks", ["workspace_id", "status", "id"])
    op.create_index(
        "tasks_undispatched_idx",
        "tasks",
        ["available_at"],
        postgresql_where=sa.text("status = 'queued' and dispatched_at is null"),
    )
    op.create_index(
        "tasks_leased_idx",
        "tasks",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 'running'"),
    )

    op.create_table(
        "task_attempts",
        sa.Column(
            "workspace_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "workspaces.id", name="task_attempts_workspace_id_fkey", ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("task_id", UUID(as_uuid=True), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("delay_ms", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _ts("at", nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="task_attempts_pkey"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "task_id"],
            ["tasks.workspace_id", "tasks.id"],
            name="task_attempts_task_fkey",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "outcome in ('started', 'succeeded', 'failed', 'retrying', 'cancelled', 'lost')",
            name="task_attempts_outcome_valid",
        ),
    )
    op.create_index(
        "task_attempts_workspace_id_task_id_idx",
        "task_attempts",
        ["workspace_id", "task_id", "attempt"],
    )

    op.execute("grant select, insert, update on tasks to keel_app")
    op.execute("grant select, insert on task_attempts to keel_app")
    create_policies(
        "tasks",
        select=READER,
        insert=f"{WRITER} and created_by = {UID}",
        update=WRITER,
        delete="false",
    )
    create_policies("task_attempts", select=READER, insert=WRITER, update="false", delete="false")

    op.execute("grant select, update on tasks to keel_guard")
    op.execute("grant insert on task_attempts to keel_guard")
    for table, command in (("tasks", "select"), ("tasks", "update"), ("task_attempts", "insert")):
        check = "with check (true)" if command == "insert" else "using (true)"
        extra = " with check (true)" if command == "update" else ""
        op.execute(
            f"create policy {table}_guard_{command} on {table} for {command}"
            f" to keel_guard {check}{extra}"
        )
    op.execute(
        """
        create function keel_private.dispatch_tasks(batch integer)
        returns table (workspace_id uuid, id uuid, created_by uuid, attempts integer,
                       priority integer, delay_ms integer)
        language sql volatile security definer set search_path = pg_catalog, pg_temp
        as $$
          update public.tasks t set dispatched_at = now()
           where (t.workspace_id, t.id) in (
                 select q.workspace_id, q.id from public.tasks q
                  where q.status = 'queued' and q.dispatched_at is null
                  order by q.available_at limit batch
                  for update skip locked)
          returning t.workspace_id, t.id, t.created_by, t.attempts, t.priority,
                    greatest(0, ceil(extract(epoch from t.available_at - now()) * 1000))::integer
        $$
        """
    )
    op.execute(
        """
        create function keel_private.recover_tasks(redispatch_after interval)
        returns integer
        language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
        as $$
        declare recovered integer := 0; n integer;
        begin
          -- A worker that died or stalled lost its lease: its attempt counts.
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
          -- Dispatched long ago but never claimed: its queue entry may be gone
          -- (Redis restarted empty). Dispatching again is idempotent (job ids).
          update public.tasks t set dispatched_at = null
           where t.status = 'queued' and t.dispatched_at < now() - redispatch_after;
          get diagnostics n = row_count;
          return recovered + n;
        end
        $$
        """
    )
    for function in ("dispatch_tasks(integer)", "recover_tasks(interval)"):
        op.execute(f"alter function keel_private.{function} owner to keel_guard")
        op.execute(f"revoke all on function keel_private.{function} from public")
        op.execute(f"grant execute on function keel_private.{function} to keel_app")


def downgrade() -> None:
    op.execute("drop function keel_private.dispatch_tasks(integer)")
    op.execute("drop function keel_private.recover_tasks(interval)")
    op.drop_table("task_attempts")
    op.drop_table("tasks")
