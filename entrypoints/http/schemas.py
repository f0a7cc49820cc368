"""Request and response bodies (msgspec). Requests reject unknown fields, so
a client can never set ids, owners or versions by mass assignment, and hold
only Keel's JSON (domain/json_values.py): every field of every body is
inspected once, as it is decoded, and every bad one is named."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from domain.entities import (
    FoundationDocument,
    Membership,
    Role,
    Task,
    TaskKind,
    TaskStatus,
    WorkspaceAccess,
)
from domain.errors import InvalidFieldsError
from domain.json_values import inspect, pointer_token
from domain.webhooks import Webhook

_JSON_TYPES = (str, int, float, list, dict)


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of every request body."""

    def __post_init__(self) -> None:
        # Raised as a domain error (not a ValueError, which msgspec would turn
        # into a message without the fields), answered 400 with every problem.
        problems = [
            problem
            for name in self.__struct_fields__
            if isinstance(value := getattr(self, name), _JSON_TYPES)
            for problem in inspect(value, f"/{pointer_token(name)}").problems
        ]
        if problems:
            raise InvalidFieldsError(problems)


class WorkspaceName(Body):
    name: str


class NewMember(Body):
    user_id: UUID
    role: Role


class RoleChange(Body):
    role: Role


class WorkspaceOut(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    role: Role
    created_by: UUID
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, access: WorkspaceAccess) -> WorkspaceOut:
        workspace = access.workspace
        return cls(
            id=workspace.id,
            name=workspace.name,
            role=access.role,
            created_by=workspace.created_by,
            created_at=workspace.created_at,
            updated_at=workspace.updated_at,
        )


class WorkspacePage(msgspec.Struct, frozen=True):
    items: list[WorkspaceOut]
    next_cursor: str | None


class MemberOut(msgspec.Struct, frozen=True):
    user_id: UUID
    email: str | None
    role: Role
    created_at: datetime | None

    @classmethod
    def of(cls, member: Membership) -> MemberOut:
        return cls(
            user_id=member.user_id,
            email=member.email,
            role=member.role,
            created_at=member.created_at,
        )


class MemberPage(msgspec.Struct, frozen=True):
    items: list[MemberOut]
    next_cursor: str | None


class MeOut(msgspec.Struct, frozen=True):
    id: UUID
    email: str | None
    created_at: datetime | None
    memberships: list[WorkspaceOut]


class Health(msgspec.Struct, frozen=True):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class DocumentIn(Body):
    kind: str
    title: str
    content: dict[str, Any]
    tags: list[str] = msgspec.field(default_factory=list)


class DocumentPatch(Body):
    kind: str | None = None
    title: str | None = None
    content: dict[str, Any] | None = None
    tags: list[str] | None = None


class DocumentOut(msgspec.Struct, frozen=True):
    id: UUID
    workspace_id: UUID
    kind: str
    title: str
    content: dict[str, Any]
    tags: list[str]
    version: int
    created_by: UUID
    updated_by: UUID
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, document: FoundationDocument) -> DocumentOut:
        return cls(
            id=document.id,
            workspace_id=document.workspace_id,
            kind=document.kind,
            title=document.title,
            content=document.content,
            tags=document.tags,
            version=document.version,
            created_by=document.created_by,
            updated_by=document.updated_by,
            created_at=document.created_at,
            updated_at=document.updated_at,
        )


class DocumentPage(msgspec.Struct, frozen=True):
    items: list[DocumentOut]
    next_cursor: str | None


class TaskIn(Body):
    kind: TaskKind
    input: dict[str, Any]
    priority: int = 0
    max_attempts: int = 5


class TaskOut(msgspec.Struct, frozen=True):
    id: UUID
    workspace_id: UUID
    kind: TaskKind
    status: TaskStatus
    input: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    priority: int
    progress: int
    cached: bool
    created_by: UUID
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        return cls(
            id=task.id,
            workspace_id=task.workspace_id,
            kind=task.kind,
            status=task.status,
            input=task.input,
            result=task.result,
            error=task.error,
            attempts=task.attempts,
            max_attempts=task.max_attempts,
            priority=task.priority,
            progress=task.progress,
            cached=task.cached,
            created_by=task.created_by,
            created_at=task.created_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
        )


class TaskPage(msgspec.Struct, frozen=True):
    items: list[TaskOut]
    next_cursor: str | None


class WebhookIn(Body):
    url: str


class WebhookOut(msgspec.Struct, frozen=True, omit_defaults=True):
    """A workspace's webhook; `secret` only in the answer that made it (a
    create, or `?rotate=true`): verify deliveries with it."""

    url: str
    created_at: datetime | None
    updated_at: datetime | None
    secret: str | None = None

    @classmethod
    def of(cls, webhook: Webhook, secret: str | None = None) -> WebhookOut:
        return cls(webhook.url, webhook.created_at, webhook.updated_at, secret)
