"""CreateDocument: a new foundation document in the caller's workspace."""

from __future__ import annotations

from application.access import caller_role, current_workspace
from application.caching import forget
from domain.cache import FOUNDATION
from domain.entities import FoundationDocument, Role
from domain.foundation import check_content, check_kind, check_tags, check_title
from domain.ports import Cache, IdGenerator, UnitOfWork
from domain.rules import require_role


class CreateDocument:
    """Members and above create documents; the cached ones are forgotten after commit."""

    def __init__(self, uow: UnitOfWork, cache: Cache, new_id: IdGenerator) -> None:
        self._uow, self._cache, self._new_id = uow, cache, new_id

    async def execute(
        self, kind: str, title: str, content: dict[str, object], tags: list[str]
    ) -> FoundationDocument:
        workspace_id, user_id = current_workspace(self._uow), self._uow.caller.user_id
        draft = FoundationDocument(
            workspace_id=workspace_id,
            id=self._new_id(),
            kind=check_kind(kind),
            title=check_title(title),
            content=check_content(content),
            tags=check_tags(tags),
            version=1,
            created_by=user_id,
            updated_by=user_id,
        )
        async with self._uow as uow:
            require_role(await caller_role(uow), Role.MEMBER, "writing foundation documents")
            created = await uow.foundation.add(draft)
            await uow.commit()
        await forget(self._cache, workspace_id, FOUNDATION)
        return created
