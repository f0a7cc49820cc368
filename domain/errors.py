"""The domain's error tree; the HTTP layer maps each branch to one status.

DomainError
├── InvalidInputError        400  the request is well-formed but not acceptable
│   └── InvalidFieldsError   400  … naming each bad field (outside Keel's JSON, too large)
├── NotFoundError            404  absent, or inside a workspace the caller cannot see
├── PermissionDeniedError    403  a member whose role does not allow the action
├── ConflictError            409  a duplicate, or a rule about other rows
│   ├── LastOwnerError       409  the change would leave a workspace without an owner
│   └── LimitReachedError    409  the caller owns as many of something as one user may
├── PreconditionFailedError  412  an If-Match version that is no longer current
├── UnreadableValueError     409  a stored value Keel cannot carry (stored before its rules)
├── QuotaExceededError       413  the caller's share of storage is used up
├── UnavailableError         503  a dependency (Postgres, Redis) cannot be reached (Retry-After)
│   └── StorageFullError     503  … or refuses writes: it is full (Retry-After)
├── RateLimitedError         429  too many at once (e.g. open event streams)
├── SubscriptionClosedError       an event subscriber must reconnect (fell behind, shutdown)
├── StreamEndedError         204  a task stream resumed after its terminal event
├── TaskCancelledError            a running task was cancelled (worker-internal)
├── WebhookDeliveryError          one webhook attempt failed: non-2xx, timeout, refused (worker)
└── ModelError                    a model provider refused for good (worker-internal)
    └── TransientModelError       … or failed in a way worth retrying
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.json_values import FieldProblem


class DomainError(Exception):
    """Base of every error the domain and application raise on purpose."""

    title = "Domain error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInputError(DomainError):
    title = "Invalid input"


class InvalidFieldsError(InvalidInputError):
    """Bad input, with every bad field named (a JSON Pointer, a parameter or a header)."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first.key or 'the body'}: {first.message}{more}")
        self.problems = tuple(problems)


class UnreadableValueError(DomainError):
    """A stored value Keel cannot carry (written before Keel's JSON was enforced,
    or by hand): the read fails for good, until the value is rewritten."""

    title = "Unreadable stored value"


class NotFoundError(DomainError):
    title = "Not found"


class PermissionDeniedError(DomainError):
    title = "Permission denied"


class ConflictError(DomainError):
    title = "Conflict"


class LastOwnerError(ConflictError):
    title = "A workspace keeps at least one owner"


class LimitReachedError(ConflictError):
    title = "Limit reached"


class QuotaExceededError(DomainError):
    title = "Quota exceeded"


class PreconditionFailedError(DomainError):
    title = "Precondition failed"


class UnavailableError(DomainError):
    """Worth trying again after `retry_after_s`: a lost connection is replaced at once."""

    title = "Service unavailable"

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class StorageFullError(UnavailableError):
    """A store is out of memory and refuses writes until some is freed."""

    title = "Storage full"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s)


class RateLimitedError(DomainError):
    """`limit` of something held at once is reached; one is free within `retry_after_s`."""

    title = "Too many requests"

    def __init__(self, detail: str, retry_after_s: int, limit: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
        self.limit = limit


class SubscriptionClosedError(DomainError):
    """An event subscription ended early; the subscriber resumes from its last id."""

    title = "Subscription closed"


class StreamEndedError(DomainError):
    """A task's stream was resumed after its terminal event: nothing more will come."""

    title = "Stream ended"


class ModelError(DomainError):
    """The model provider refused the request for good (bad input, auth): no retry."""

    title = "Model error"


class TransientModelError(ModelError):
    """The provider failed in a way worth retrying (429, 5xx, timeout, connection)."""

    title = "Model temporarily unavailable"

    def __init__(self, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class TaskCancelledError(DomainError):
    """The task was cancelled while it ran; the worker stops at its next step."""

    title = "Task cancelled"


class WebhookDeliveryError(DomainError):
    """One attempt to deliver a webhook failed: an answer other than 2xx, a
    timeout, a connection error, or a target that resolves where webhooks
    may not go. Worth retrying (DNS and receivers change)."""

    title = "Webhook delivery failed"
