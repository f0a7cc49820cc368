"""The schema as SQLAlchemy Core tables, one module per concern.

Alembic owns the schema (alembic/versions); these tables mirror it for
queries, and `keel db check` compares the two. Constraint names matter:
adapters/postgres/errors.py maps violations to domain errors by name.
Importing this package registers every table in `metadata`.
"""

from adapters.postgres.tables.base import metadata
from adapters.postgres.tables.foundation import foundation_documents, foundation_revisions
from adapters.postgres.tables.tasks import task_attempts, tasks
from adapters.postgres.tables.tenancy import ROLES, memberships, users, workspaces
from adapters.postgres.tables.webhooks import webhook_deliveries, workspace_webhooks

__all__ = [
    "ROLES",
    "foundation_documents",
    "foundation_revisions",
    "memberships",
    "metadata",
    "task_attempts",
    "tasks",
    "users",
    "webhook_deliveries",
    "workspace_webhooks",
    "workspaces",
]
