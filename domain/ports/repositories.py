"""Repositories: tenant data, each inside the unit of work that owns it."""

from __future__ import annotations

import builtins
from typing import Protocol
from uuid import UUID

from domain.entities import (
    AttemptRecord,
    Claim,
    ClaimRefused,
    FoundationChanges,
    FoundationDocument,
    FoundationFilter,
    Lease,
    Membership,
    Role,
    Task,
    TaskKind,
    TaskRef,
    TaskStatus,
    User,
    Workspace,
    WorkspaceAccess,
)
from domain.webhooks import Webhook, WebhookSaved


class UserRepository(Protocol):
    async def upsert(self, user: User) -> None:
        """Insert the caller's profile, or update its email if it changed."""
        ...

    async def get(self, user_id: UUID) -> User | None: ...

    async def lock(self, user_id: UUID) -> bool:
        """Lock the user's profile until the transaction ends, so that the user's
        concurrent requests that count what they own take turns; False if the
        user has no profile."""
        ...


class WorkspaceRepository(Protocol):
    async def add(self, workspace: Workspace) -> None: ...

    async def get(self, workspace_id: UUID) -> Workspace | None: ...

    async def rename(self, workspace_id: UUID, name: str) -> Workspace | None: ...

    async def delete(self, workspace_id: UUID) -> bool:
        """Delete the workspace and everything in it; False if it was not there."""
        ...

    async def list_for_user(
        self, user_id: UUID, after: UUID | None, limit: int | None
    ) -> list[WorkspaceAccess]:
        """The user's workspaces ordered by id, after `after`; all when `limit` is None."""
        ...

    async def count_owned(self, user_id: UUID) -> int:
        """How many workspaces the user owns."""
        ...


class MembershipRepository(Protocol):
    async def role_of(self, workspace_id: UUID, user_id: UUID) -> Role | None: ...

    async def get(self, workspace_id: UUID, user_id: UUID) -> Membership | None: ...

    async def add(self, membership: Membership) -> None:
        """Raises ConflictError if already a member, NotFoundError for an unknown user."""
        ...

    async def set_role(self, workspace_id: UUID, user_id: UUID, role: Role) -> Membership | None:
        """Raises LastOwnerError if it would leave the workspace without an owner."""
        ...

    async def remove(self, workspace_id: UUID, user_id: UUID) -> bool:
        """Raises LastOwnerError if it would leave the workspace without an owner."""
        ...

    async def list(self, workspace_id: UUID, after: UUID | None, limit: int) -> list[Membership]:
        """Members ordered by user id, starting after `after`, with their emails."""
        ...


class FoundationRepository(Protocol):
    async def add(self, document: FoundationDocument) -> FoundationDocument:
        """Insert and return the stored document (with its timestamps), recording a revision."""
        ...

    async def get(self, workspace_id: UUID, document_id: UUID) -> FoundationDocument | None: ...

    async def get_with_role(
        self, workspace_id: UUID, document_id: UUID
    ) -> tuple[Role | None, FoundationDocument | None]:
        """The caller's role in the workspace (None for a non-member) and the
        document (None when absent or not visible), in one round trip."""
        ...

    async def update(
        self,
        workspace_id: UUID,
        document_id: UUID,
        changes: FoundationChanges,
        expected_version: int | None,
        by: UUID,
    ) -> FoundationDocument | None:
        """Apply `changes` and bump the version in one statement, recording a revision.

        None when no row matched: the document is absent, or its version is
        not `expected_version`.
        """
        ...

    async def delete(
        self, workspace_id: UUID, document_id: UUID, expected_version: int | None, by: UUID
    ) -> bool:
        """Delete (if at `expected_version`), recording a revision; False when no row matched."""
        ...

    async def list(
        self, workspace_id: UUID, where: FoundationFilter, after: UUID | None, limit: int | None
    ) -> list[FoundationDocument]:
        """Documents ordered by id, after `after`; all when `limit` is None."""
        ...


class TaskRepository(Protocol):
    """Tasks as users see and change them (the worker's state changes are
    TaskStates)."""

    async def add(
        self, task: Task, idempotency_key: str | None, request_hash: str | None
    ) -> Task | None:
        """Insert a queued task (its enqueue intent commits with it); None if the
        idempotency key is taken."""
        ...

    async def find_by_key(self, workspace_id: UUID, key: str) -> tuple[Task, str | None] | None:
        """The task created with this idempotency key, and its request hash."""
        ...

    async def get(self, workspace_id: UUID, task_id: UUID) -> Task | None: ...

    async def list(
        self,
        workspace_id: UUID,
        status: TaskStatus | None,
        kind: TaskKind | None,
        before: UUID | None,
        limit: int,
    ) -> list[Task]:
        """Newest first, starting before the id `before`."""
        ...

    async def cancel(self, workspace_id: UUID, task_id: UUID) -> Task | None:
        """Cancel a queued task at once; ask a running one to stop. None if absent."""
        ...

    async def replay(self, workspace_id: UUID, task_id: UUID) -> Task | None:
        """Queue a failed task again with a fresh budget of attempts (recording a
        `replayed` attempt row); None unless the task is there and failed."""
        ...

    async def history(self, workspace_id: UUID, task_id: UUID) -> builtins.list[AttemptRecord]:
        """The task's attempt history, oldest first."""
        ...


class TaskStates(Protocol):
    """A worker's state changes of one task. Each has committed when it returns
    (changes of several tasks made at the same moment may share a transaction),
    each runs in its task's tenant context (its workspace and creator, under
    row-level security), and each is guarded by (status, attempt), so a late or
    duplicate delivery can never write a second result."""

    async def claim(self, ref: TaskRef, max_running: int, lease_s: float) -> Claim | ClaimRefused:
        """Start the next attempt: the Claim; BUSY when the workspace already runs
        `max_running` tasks (try again later); NOTHING when there is nothing to run."""
        ...

    async def heartbeat(self, ref: TaskRef, attempt: int, lease_s: float, progress: int) -> Lease:
        """Extend the lease and record progress: HELD, CANCEL_ASKED when cancel
        was asked, LOST when this attempt no longer owns the task."""
        ...

    async def finish(
        self,
        ref: TaskRef,
        attempt: int,
        status: TaskStatus,
        result: dict[str, object] | None = None,
        error: str | None = None,
        cached: bool = False,
    ) -> bool:
        """Record the final state; False when this attempt no longer owns the task."""
        ...

    async def retry_later(self, ref: TaskRef, attempt: int, delay_ms: int, error: str) -> bool:
        """Back to queued, available after `delay_ms`; False when no longer ours."""
        ...

    async def postpone(self, ref: TaskRef, delay_ms: int) -> None:
        """Note that the task waits `delay_ms` more (the workspace is busy); the
        queue entry itself is delayed by the worker."""
        ...

    async def replay(self, ref: TaskRef, attempt: int) -> Task | None:
        """Queue the task again with a fresh budget of attempts, if it failed for
        good at attempt `attempt` (its last); the task as queued, else None."""
        ...


class WebhookRepository(Protocol):
    """A workspace's webhook; row-level security lets only its owners reach it."""

    async def get(self, workspace_id: UUID) -> Webhook | None: ...

    async def save(self, webhook: Webhook, secret: str, rotate: bool) -> WebhookSaved:
        """Create the webhook with `secret`, or change its URL (and, if `rotate`,
        its secret to `secret`) in one statement, safe against a concurrent save."""
        ...

    async def delete(self, workspace_id: UUID) -> bool:
        """Delete it and its undelivered events; False if there was none."""
        ...
