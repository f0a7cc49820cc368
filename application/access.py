"""The membership check every workspace-scoped use case starts with."""

from uuid import UUID

from domain.entities import Role
from domain.errors import NotFoundError
from domain.ports import UnitOfWork


def current_workspace(uow: UnitOfWork) -> UUID:
    """The workspace the unit of work is bound to."""
    workspace_id = uow.caller.workspace_id
    if workspace_id is None:
        raise NotFoundError("workspace not found")
    return workspace_id


async def caller_role(uow: UnitOfWork) -> Role:
    """The caller's role in the bound workspace.

    Raises NotFoundError when the caller is not a member, so that a
    workspace one cannot see looks exactly like one that does not exist.
    """
    role = await uow.memberships.role_of(current_workspace(uow), uow.caller.user_id)
    if role is None:
        raise NotFoundError("workspace not found")
    return role
