"""GetDocument and ListDocuments with caching off, over the in-memory fakes:
one unit of work per read, the membership answered before the document."""

from __future__ import annotations

import uuid
from uuid import UUID

import pytest

from adapters.pass_through_cache import PassThroughCache
from application.foundation import GetDocument, ListDocuments
from domain.entities import (
    Caller,
    FoundationDocument,
    FoundationFilter,
    Membership,
    Role,
    User,
    Workspace,
)
from domain.errors import NotFoundError
from tests.fakes import InMemoryUnitOfWorkFactory


class Counted:
    """A unit-of-work factory that counts the units of work opened."""

    def __init__(self) -> None:
        self.factory = InMemoryUnitOfWorkFactory()
        self.workspace = uuid.uuid4()
        self.owner = self.join()
        db = self.factory.committed
        db.workspaces[self.workspace] = Workspace(self.workspace, "Acme", created_by=self.owner)
        self.document = uuid.uuid4()
        db.documents[self.workspace, self.document] = FoundationDocument(
            workspace_id=self.workspace,
            id=self.document,
            kind="brand",
            title="Voice",
            content={"tone": "warm"},
            tags=[],
            version=1,
            created_by=self.owner,
            updated_by=self.owner,
        )

    def join(self) -> UUID:
        user_id = uuid.uuid4()
        db = self.factory.committed
        db.users[user_id] = User(user_id, None)
        db.memberships[self.workspace, user_id] = Membership(self.workspace, user_id, Role.VIEWER)
        return user_id

    def stranger(self) -> UUID:
        user_id = uuid.uuid4()
        self.factory.committed.users[user_id] = User(user_id, None)
        return user_id

    def get(self, user_id: UUID) -> GetDocument:
        return GetDocument(self.factory(Caller(user_id, self.workspace)), PassThroughCache())

    def list(self, user_id: UUID) -> ListDocuments:
        return ListDocuments(self.factory(Caller(user_id, self.workspace)))


async def test_a_member_reads_a_document_in_one_unit_of_work() -> None:
    world = Counted()
    document = await world.get(world.owner).execute(world.document)
    assert (document.id, document.title) == (world.document, "Voice")
    assert len(world.factory.opened) == 1


@pytest.mark.parametrize("exists", [True, False])
async def test_a_stranger_is_told_the_workspace_is_not_found(exists: bool) -> None:
    world = Counted()
    target = world.document if exists else uuid.uuid4()
    with pytest.raises(NotFoundError, match="workspace not found"):
        await world.get(world.stranger()).execute(target)
    with pytest.raises(NotFoundError, match="workspace not found"):
        await world.list(world.stranger()).execute(FoundationFilter(), 50, None)


async def test_a_member_is_told_a_missing_document_is_not_found() -> None:
    world = Counted()
    with pytest.raises(NotFoundError, match="foundation document not found"):
        await world.get(world.join()).execute(uuid.uuid4())


async def test_a_members_empty_page_is_a_page() -> None:
    world = Counted()
    page = await world.list(world.join()).execute(FoundationFilter(kind="none"), 50, None)
    assert page.items == []
