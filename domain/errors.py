"""The domain's error tree; the HTTP layer maps each branch to one status.

DomainError
├── InvalidInputError        400  the request is well-formed but not acceptable
├── NotFoundError            404  absent, or inside a workspace the caller cannot see
├── PermissionDeniedError    403  a member whose role does not allow the action
├── ConflictError            409  a duplicate, or a rule about other rows
│   └── LastOwnerError       409  the change would leave a workspace without an owner
├── PreconditionFailedError  412  an If-Match version that is no longer current
└── UnavailableError         503  a dependency (Postgres, Redis) cannot be reached
"""


class DomainError(Exception):
    """Base of every error the domain and application raise on purpose."""

    title = "Domain error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInputError(DomainError):
    title = "Invalid input"


class NotFoundError(DomainError):
    title = "Not found"


class PermissionDeniedError(DomainError):
    title = "Permission denied"


class ConflictError(DomainError):
    title = "Conflict"


class LastOwnerError(ConflictError):
    title = "A workspace keeps at least one owner"


class PreconditionFailedError(DomainError):
    title = "Precondition failed"


class UnavailableError(DomainError):
    title = "Service unavailable"
