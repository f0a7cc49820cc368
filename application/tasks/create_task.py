"""CreateTask: queue a task, idempotently when the request carries a key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from application.access import caller_role, current_workspace
from domain.entities import Role, Task, TaskKind, TaskStatus
from domain.errors import ConflictError, InvalidInputError
from domain.ports import IdGenerator, UnitOfWork
from domain.rules import require_role
from domain.tasks import check_input, check_key, request_hash


@dataclass(frozen=True, slots=True)
class Accepted:
    task: Task
    created: bool


class CreateTask:
    """Queue a task. With an idempotency key: the same request returns the same
    task; another request with that key raises ConflictError."""

    def __init__(self, uow: UnitOfWork, new_id: IdGenerator) -> None:
        self._uow, self._new_id = uow, new_id

    async def execute(
        self,
        kind: TaskKind,
        data: dict[str, Any],
        priority: int,
        max_attempts: int,
        idempotency_key: str | None,
    ) -> Accepted:
        if not 0 <= priority <= 10:
            raise InvalidInputError("priority must be between 0 and 10")
        if not 1 <= max_attempts <= 20:
            raise InvalidInputError("max_attempts must be between 1 and 20")
        data, key = check_input(kind, data), check_key(idempotency_key)
        fingerprint = request_hash(kind, data, priority, max_attempts) if key else None
        workspace_id = current_workspace(self._uow)
        task = Task(
            workspace_id=workspace_id,
            id=self._new_id(),
            kind=kind,
            status=TaskStatus.QUEUED,
            input=data,
            created_by=self._uow.caller.user_id,
            priority=priority,
            max_attempts=max_attempts,
        )
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.MEMBER, "starting tasks")
            created = await uow.tasks.add(task, key, fingerprint)
            if created is not None:
                await uow.commit()
                return Accepted(created, True)
        assert key is not None, "only an idempotency key can collide"
        return await self._replay(key, fingerprint)

    async def _replay(self, key: str, fingerprint: str | None) -> Accepted:
        async with self._uow as uow:
            found = await uow.tasks.find_by_key(current_workspace(uow), key)
        if found is None:
            raise ConflictError("that Idempotency-Key is being used by a concurrent request")
        task, stored = found
        if stored != fingerprint:
            raise ConflictError("that Idempotency-Key was used with a different request")
        return Accepted(task, False)
