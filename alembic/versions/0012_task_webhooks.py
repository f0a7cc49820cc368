"""Task webhooks: one per workspace, and a durable outbox of deliveries.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

- `workspace_webhooks`: a workspace's URL and signing secret. Only its
  owners may read or change it (every keel_app policy asks for the owner
  role), so a member can neither read the secret nor redirect the events.
- `webhook_deliveries`: one row per task that reached a final state in a
  workspace with a webhook. An AFTER UPDATE trigger on tasks writes it in
  the same transaction as the state change (the worker's finish, a cancel,
  recovery giving up), so nothing is lost if a worker or Redis dies. The
  trigger function runs as keel_guard: the task's creator (whose tenant
  context the worker uses) is usually not an owner and cannot read the
  webhook itself. The payload is a snapshot of the task at that moment.
- Workers claim due deliveries across workspaces with a lease (FOR UPDATE
  SKIP LOCKED) and record each attempt's outcome through two definer
  functions that only keel_dispatcher may call. A claim counts the attempt,
  so a sender that dies mid-attempt is bounded too; its lease expires and
  the next claim takes the delivery again (or gives up on it when that was
  the last attempt). The outcome is guarded by the attempt number, so a
  sender whose lease ran out cannot overwrite a later attempt's.
Deliveries go with their webhook (and their task): deleting the webhook
drops what it had not sent yet.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from adapters.postgres.rls import ROLE, WS, create_policies

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER = f"workspace_id = {WS} and {ROLE} = 'owner'"
FINAL = "('succeeded', 'failed', 'cancelled')"
_HEADER = "security definer set search_path = pg_catalog, pg_temp"


def _utc(column: str) -> str:
    """RFC 3339 in UTC whatever the session's TimeZone."""
    return f"""to_char({column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


FUNCTIONS = {
    "record_webhook_delivery()": f"""
        returns trigger language plpgsql volatile {_HEADER}
        as $$
        begin
          insert into public.webhook_deliveries (workspace_id, id, task_id, payload)
          select new.workspace_id, gen_random_uuid(), new.id, jsonb_build_object(
                   'type', 'task.' || new.status,
                   'timestamp', {_utc("now()")},
                   'data', jsonb_build_object(
                     'task_id', new.id, 'workspace_id', new.workspace_id, 'kind', new.kind,
                     'status', new.status, 'result', new.result, 'error', new.error,
                     'attempts', new.attempts, 'cached', new.cached,
                     'created_at', {_utc("new.created_at")},
                     'started_at', {_utc("new.started_at")},
                     'finished_at', {_utc("new.finished_at")}))
            from public.workspace_webhooks w
           where w.workspace_id = new.workspace_id;
          return null;
        end
        $$""",
    "claim_webhook_deliveries(integer, integer, integer)": f"""
        returns table (workspace_id uuid, id uuid, attempts integer, url text, secret text,
                       payload text)
        language sql volatile {_HEADER}
        as $$
          -- The sender of a last attempt stopped answering: that attempt counted.
          update public.webhook_deliveries d set
                 status = 'failed', lease_expires_at = null, finished_at = now(),
                 last_error = 'the worker sending attempt ' || d.attempts || ' stopped answering'
           where (d.workspace_id, d.id) in (
                 select q.workspace_id, q.id from public.webhook_deliveries q
                  where q.status = 'pending' and q.attempts >= p_max_attempts
                    and (q.lease_expires_at is null or q.lease_expires_at < now())
                  for update skip locked);
          update public.webhook_deliveries d set
                 attempts = d.attempts + 1,
                 lease_expires_at = now() + make_interval(secs => p_lease_ms / 1000.0)
            from public.workspace_webhooks w
           where w.workspace_id = d.workspace_id
             and (d.workspace_id, d.id) in (
                 select q.workspace_id, q.id from public.webhook_deliveries q
                  where q.status = 'pending' and q.available_at <= now()
                    and (q.lease_expires_at is null or q.lease_expires_at < now())
                  order by q.available_at limit p_batch
                  for update skip locked)
          returning d.workspace_id, d.id, d.attempts, w.url, w.secret, d.payload::text
        $$""",
    "finish_webhook_delivery(uuid, uuid, integer, text, text, integer)": f"""
        returns boolean language sql volatile {_HEADER}
        as $$
          -- p_outcome: delivered, retry (after p_retry_ms) or failed (for good).
          update public.webhook_deliveries d set
                 status = case p_outcome when 'retry' then 'pending' else p_outcome end,
                 last_error = case when p_outcome = 'delivered' then d.last_error
                                   else left(p_error, 1000) end,
                 available_at = case when p_outcome = 'retry'
                                     then now() + make_interval(secs => p_retry_ms / 1000.0)
                                     else d.available_at end,
                 lease_expires_at = null,
                 finished_at = case when p_outcome = 'retry' then null else now() end
           where d.workspace_id = p_workspace and d.id = p_id and d.attempts = p_attempt
             and d.status = 'pending' and p_outcome in ('delivered', 'retry', 'failed')
          returning true
        $$""",
}
_PARAMETERS = {
    "record_webhook_delivery": "",
    "claim_webhook_deliveries": "p_batch integer, p_lease_ms integer, p_max_attempts integer",
    "finish_webhook_delivery": "p_workspace uuid, p_id uuid, p_attempt integer, p_outcome text,"
    " p_error text, p_retry_ms integer",
}


def upgrade() -> None:
    op.create_table(
        "workspace_webhooks",
        sa.Column(
            "workspace_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "workspaces.id", name="workspace_webhooks_workspace_id_fkey", ondelete="CASCADE"
            ),
            primary_key=True,
        ),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("char_length(url) between 1 and 2048", name="workspace_webhooks_url"),
        sa.CheckConstraint("secret like 'whsec_%'", name="workspace_webhooks_secret"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("workspace_id", UUID(as_uuid=True), nullable=False),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("task_id", UUID(as_uuid=True), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column(
            "available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="webhook_deliveries_pkey"),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace_webhooks.workspace_id"],
            name="webhook_deliveries_webhook_fkey",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "task_id"],
            ["tasks.workspace_id", "tasks.id"],
            name="webhook_deliveries_task_fkey",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status in ('pending', 'delivered', 'failed')", name="webhook_deliveries_status_valid"
        ),
    )
    op.create_index(
        "webhook_deliveries_workspace_id_task_id_idx",
        "webhook_deliveries",
        ["workspace_id", "task_id"],
    )
    op.create_index(
        "webhook_deliveries_due_idx",
        "webhook_deliveries",
        ["available_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )

    op.execute("grant select, insert, update, delete on workspace_webhooks to keel_app")
    op.execute("grant select on webhook_deliveries to keel_app")
    create_policies("workspace_webhooks", select=OWNER, insert=OWNER, update=OWNER, delete=OWNER)
    create_policies(
        "webhook_deliveries", select=OWNER, insert="false", update="false", delete="false"
    )

    op.execute("grant select on workspace_webhooks to keel_guard")
    op.execute("grant select, insert, update on webhook_deliveries to keel_guard")
    op.execute(
        "create policy workspace_webhooks_guard_select on workspace_webhooks"
        " for select to keel_guard using (true)"
    )
    for command, clause in (
        ("select", "using (true)"),
        ("insert", "with check (true)"),
        ("update", "using (true) with check (true)"),
    ):
        op.execute(
            f"create policy webhook_deliveries_guard_{command} on webhook_deliveries"
            f" for {command} to keel_guard {clause}"
        )

    for signature, body in FUNCTIONS.items():
        name = signature.split("(")[0]
        op.execute(f"create function keel_private.{name}({_PARAMETERS[name]}) {body}")
        op.execute(f"alter function keel_private.{signature} owner to keel_guard")
        op.execute(f"revoke all on function keel_private.{signature} from public")
    for signature in list(FUNCTIONS)[1:]:
        op.execute(f"grant execute on function keel_private.{signature} to keel_dispatcher")
    op.execute(
        "create trigger tasks_record_webhook_delivery after update of status on tasks"
        f" for each row when (old.status not in {FINAL} and new.status in {FINAL})"
        " execute function keel_private.record_webhook_delivery()"
    )


def downgrade() -> None:
    op.execute("drop trigger tasks_record_webhook_delivery on tasks")
    for signature in FUNCTIONS:
        op.execute(f"drop function keel_private.{signature}")
    op.drop_table("webhook_deliveries")
    op.drop_table("workspace_webhooks")
