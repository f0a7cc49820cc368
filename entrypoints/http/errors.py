"""The one place that maps errors to RFC 9457 problem details.

Domain errors map by class; Litestar's own HTTP errors (validation, 401,
404 for unknown routes, 413) keep their status; anything else is a 500 that
is logged with its traceback and answered without one.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from domain.errors import (
    ConflictError,
    DomainError,
    InvalidFieldsError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    QuotaExceededError,
    RateLimitedError,
    StreamEndedError,
    UnavailableError,
    UnreadableValueError,
)

logger = logging.getLogger("keel.http")

_STATUS: dict[type, int] = {
    DomainError: 400,
    InvalidInputError: 400,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    PreconditionFailedError: 412,
    QuotaExceededError: 413,
    RateLimitedError: 429,
    UnreadableValueError: 409,
    UnavailableError: 503,
}


def problem(
    request: Request[Any, Any, Any],
    status: int,
    title: str,
    detail: str,
    slug: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    return ProblemDetailsException(
        status_code=status,
        type_=f"urn:keel:problem:{slug}",
        title=title,
        detail=detail,
        extra=extra,
        headers=headers,
    ).to_response(request)


def _slug(title: str) -> str:
    return "-".join(title.lower().replace("-", " ").split())


def on_domain_error(request: Request[Any, Any, Any], error: DomainError) -> Response[Any]:
    status = next(_STATUS[kind] for kind in type(error).__mro__ if kind in _STATUS)
    headers = (
        {"Retry-After": str(error.retry_after_s)}
        if isinstance(error, RateLimitedError | UnavailableError)
        else None
    )
    if isinstance(error, RateLimitedError) and error.limit is not None:
        # As Litestar's rate limiter answers on the task route: the limit,
        # none left, and when one is.
        headers = {
            **(headers or {}),
            "RateLimit-Limit": str(error.limit),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(error.retry_after_s),
        }
    extra = None
    if isinstance(error, InvalidFieldsError):
        extra = {
            "errors": [
                {"key": _text(found.key), "message": found.message, "source": found.source}
                for found in error.problems
            ]
        }
    return problem(
        request, status, error.title, _text(error.detail), _slug(error.title), extra, headers
    )


def _text(echoed: str) -> str:
    """Text that quotes the request, as UTF-8 can carry it: a lone surrogate in a
    field's name is written as its escape, not a response that cannot be encoded."""
    return echoed.encode("utf-8", "backslashreplace").decode("utf-8")


def on_stream_ended(request: Request[Any, Any, Any], error: StreamEndedError) -> Response[Any]:
    """204: EventSource stops reconnecting to a stream that has nothing more."""
    return Response(content=None, status_code=204)


def on_http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    extra = None
    if isinstance(error, ValidationException) and error.extra:
        extra = {"errors": error.extra}
    phrase = _phrase(error.status_code)
    headers = dict(error.headers or {})
    if error.status_code == 429 and "RateLimit-Reset" in headers:
        headers["Retry-After"] = headers["RateLimit-Reset"]
    if error.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")  # RFC 9110 §15.5.2: every 401 has one
    return problem(
        request, error.status_code, phrase, error.detail or phrase, _slug(phrase), extra, headers
    )


def on_unexpected_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal server error",
        "the server failed to handle this request; it has been logged",
        "internal-server-error",
    )


def _phrase(status: int) -> str:
    """The status's phrase in sentence case, as the domain's titles are: one
    problem type (`urn:keel:problem:not-found`) has one title, whichever
    layer answered ("Not found", never also "Not Found")."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "Error"
    return phrase[0] + phrase[1:].lower()


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    DomainError: on_domain_error,
    StreamEndedError: on_stream_ended,
    HTTPException: on_http_error,
    Exception: on_unexpected_error,
}
