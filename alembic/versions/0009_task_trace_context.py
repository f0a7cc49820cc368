"""A task carries the trace of the request that created it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

`tasks.trace_context` keeps the W3C `traceparent` of the request that
created the task (null when that request was not traced), and
`dispatch_tasks` returns it, so the job on the queue and the worker's span
continue that trace across the outbox and queue hop. The function's result
type changes: it is dropped and created again, with 0003's owner
(keel_guard) and 0004's grants (keel_dispatcher only).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DISPATCH = """
    create function keel_private.dispatch_tasks(batch integer)
    returns table (workspace_id uuid, id uuid, created_by uuid, attempts integer,
                   priority integer, delay_ms integer{trace})
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
                {trace_column}
    $$
"""


def _dispatch(traced: bool) -> None:
    op.execute("drop function keel_private.dispatch_tasks(integer)")
    op.execute(
        _DISPATCH.format(
            trace=", trace_context text" if traced else "",
            trace_column=", t.trace_context" if traced else "",
        )
    )
    # As 0003 made it: a definer owned by keel_guard, not by the migrator.
    op.execute("alter function keel_private.dispatch_tasks(integer) owner to keel_guard")
    op.execute("revoke all on function keel_private.dispatch_tasks(integer) from public")
    op.execute("grant execute on function keel_private.dispatch_tasks(integer) to keel_dispatcher")


def upgrade() -> None:
    op.add_column("tasks", sa.Column("trace_context", sa.Text, nullable=True))
    op.create_check_constraint("tasks_trace_context_size", "tasks", "length(trace_context) <= 512")
    _dispatch(traced=True)


def downgrade() -> None:
    _dispatch(traced=False)
    op.drop_constraint("tasks_trace_context_size", "tasks")
    op.drop_column("tasks", "trace_context")
