"""SQL for row-level security, shared by the migrations.

Migrations call these helpers when they run, so their output must never
change meaning: to change a policy, write a new migration (and, if needed,
a new helper), never edit these.
"""

from alembic import op

UID = "(select keel_private.app_user_id())"
WS = "(select keel_private.app_workspace_id())"
ROLE = "(select keel_private.caller_role((select keel_private.app_workspace_id())))"

READER = f"workspace_id = {WS} and {ROLE} is not null"
WRITER = f"workspace_id = {WS} and {ROLE} in ('owner', 'admin', 'member')"


def create_policies(table: str, select: str, insert: str, update: str, delete: str) -> None:
    """ENABLE and FORCE row-level security on `table`, with one keel_app policy per command.

    UPDATE gets `update` as both USING and WITH CHECK, so a row can neither be
    reached nor moved outside what the policy allows.
    """
    op.execute(f"alter table {table} enable row level security")
    op.execute(f"alter table {table} force row level security")
    op.execute(f"create policy {table}_select on {table} for select to keel_app using ({select})")
    op.execute(
        f"create policy {table}_insert on {table} for insert to keel_app with check ({insert})"
    )
    op.execute(
        f"create policy {table}_update on {table} for update to keel_app"
        f" using ({update}) with check ({update})"
    )
    op.execute(f"create policy {table}_delete on {table} for delete to keel_app using ({delete})")
