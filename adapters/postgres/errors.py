"""Driver errors become domain errors here, by SQLSTATE and constraint name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from domain.errors import (
    ConflictError,
    DomainError,
    LastOwnerError,
    NotFoundError,
    UnavailableError,
)

_BY_CONSTRAINT: dict[str, DomainError] = {
    "memberships_pkey": ConflictError("already a member of this workspace"),
    "memberships_user_id_fkey": NotFoundError("no such user: they must sign in once first"),
    "workspace_keeps_an_owner": LastOwnerError("a workspace keeps at least one owner"),
}

# insufficient_privilege: a row-level security check refused the row. The
# application checks access before writing, so reaching this is a caller
# probing another tenant: answer as if the row did not exist.
# serialization_failure, deadlock_detected: the transaction lost a race and
# is worth running again (503 over HTTP; background work retries it).
_BY_SQLSTATE: dict[str, DomainError] = {
    "42501": NotFoundError("not found"),
    "40001": UnavailableError("a concurrent transaction conflicted; try again"),
    "40P01": UnavailableError("a concurrent transaction conflicted; try again"),
}


def sqlstate(error: DBAPIError) -> tuple[str | None, str | None]:
    """(SQLSTATE, constraint name) of a driver error wrapped by SQLAlchemy."""
    cause = getattr(error.orig, "__cause__", None) or error.orig
    return getattr(cause, "sqlstate", None), getattr(cause, "constraint_name", None)


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise known database errors as domain errors; let the rest through."""
    try:
        yield
    except (OperationalError, InterfaceError, OSError) as error:
        raise UnavailableError("the database is unavailable") from error
    except DBAPIError as error:
        code, constraint = sqlstate(error)
        known = _BY_CONSTRAINT.get(constraint or "") or _BY_SQLSTATE.get(code or "")
        if known is None:
            raise
        raise type(known)(known.detail) from error
