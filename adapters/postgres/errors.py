"""Driver errors become domain errors here, by SQLSTATE and constraint name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from adapters.postgres.liveness import session_ended
from domain.errors import (
    ConflictError,
    DomainError,
    InvalidInputError,
    LastOwnerError,
    NotFoundError,
    UnavailableError,
)

_BY_CONSTRAINT: dict[str, DomainError] = {
    "memberships_pkey": ConflictError("already a member of this workspace"),
    "memberships_user_id_fkey": NotFoundError("no such user: they must sign in once first"),
    "workspace_keeps_an_owner": LastOwnerError("a workspace keeps at least one owner"),
    # The schema's own input checks: reached only by input the boundary let
    # through (a bug there), which is still a 400, not a 500.
    "foundation_documents_content_object": InvalidInputError(
        "content must be a JSON object of at most 256 KiB as stored"
    ),
    "foundation_documents_kind_valid": InvalidInputError("kind is not a valid kind"),
    "foundation_documents_title_length": InvalidInputError("title must be 1 to 300 characters"),
    "foundation_documents_tags_count": InvalidInputError("at most 50 tags are allowed"),
    "workspaces_name_length": InvalidInputError("name must be 1 to 200 characters"),
}

# insufficient_privilege: a row-level security check refused the row. The
# application checks access before writing, so reaching this is a caller
# probing another tenant: answer as if the row did not exist.
# serialization_failure, deadlock_detected: the transaction lost a race and
# is worth running again (503 over HTTP; background work retries it).
# character_not_in_repertoire, untranslatable_character: a NUL in text or in
# JSONB, which Postgres cannot store (the boundary refuses it first).
_BY_SQLSTATE: dict[str, DomainError] = {
    "22021": InvalidInputError("text cannot contain NUL characters"),
    "22P05": InvalidInputError("JSON text cannot contain \\u0000"),
    "42501": NotFoundError("not found"),
    "40001": UnavailableError("a concurrent transaction conflicted; try again"),
    "40P01": UnavailableError("a concurrent transaction conflicted; try again"),
}


# Classes whose every member means "not now": 08 connection exception,
# 53 insufficient resources (53300 too many connections, out of memory, disk
# full), 57 operator intervention (57P01 admin shutdown, 57014 a cancelled
# statement, 57P03 cannot connect now).
_UNAVAILABLE_CLASSES = ("08", "53", "57")
_UNAVAILABLE = "the database is unavailable; try again"


def sqlstate(error: DBAPIError) -> tuple[str | None, str | None]:
    """(SQLSTATE, constraint name) of a driver error wrapped by SQLAlchemy."""
    cause = getattr(error.orig, "__cause__", None) or error.orig
    return getattr(cause, "sqlstate", None), getattr(cause, "constraint_name", None)


def _unavailable(error: DBAPIError) -> bool:
    """Whether `error` says the database, or this connection to it, is gone for now."""
    code, _ = sqlstate(error)
    return (
        error.connection_invalidated
        or session_ended(error.orig)
        or (code or "").startswith(_UNAVAILABLE_CLASSES)
    )


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise known database errors as domain errors; let the rest through.

    A database that cannot be reached, a session the server ended, a pool
    with no connection to spare (its timeout): UnavailableError (503 with
    Retry-After), worth trying again.
    """
    try:
        yield
    except (OperationalError, InterfaceError, PoolTimeoutError, OSError) as error:
        raise UnavailableError(_UNAVAILABLE) from error
    except DBAPIError as error:
        if _unavailable(error):
            raise UnavailableError(_UNAVAILABLE) from error
        if type(getattr(error.orig, "__cause__", None)) is asyncpg.DataError:
            # The driver could not encode a parameter: input (a lone surrogate,
            # a number past its column's type) that the boundary let through.
            # (The server's own data errors are subclasses, e.g. division by
            # zero: a bug, not the caller's input.)
            raise InvalidInputError("a value cannot be stored as given") from error
        code, constraint = sqlstate(error)
        known = _BY_CONSTRAINT.get(constraint or "") or _BY_SQLSTATE.get(code or "")
        if known is None:
            raise
        raise type(known)(known.detail) from error
