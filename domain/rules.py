"""Who may do what in a workspace (API.md, Roles).

owner > admin > member > viewer. Viewers read; members also write workspace
data; admins also rename the workspace and manage members who are not owners;
owners also delete the workspace, manage admins and owners, and replay dead
letters. Anyone may leave. That a workspace keeps an owner is enforced by the
database, since only it sees concurrent changes.
"""

from domain.entities import Role
from domain.errors import PermissionDeniedError


def require_role(actual: Role, minimum: Role, action: str) -> None:
    """Raise PermissionDeniedError unless `actual` ranks at least `minimum`."""
    if not actual.at_least(minimum):
        raise PermissionDeniedError(f"{action} needs the {minimum} role; you are {actual}")


def check_role_change(actor: Role, current: Role | None, new: Role | None) -> None:
    """May `actor` move a member from `current` to `new`?

    `current` None adds a member; `new` None removes one.

    Raises PermissionDeniedError when not.
    """
    require_role(actor, Role.ADMIN, "managing members")
    if actor is Role.OWNER:
        return
    if current is Role.OWNER or new is Role.OWNER:
        raise PermissionDeniedError("only an owner can add, change or remove owners")
