"""W3C trace context carried across the task outbox and the queue.

Only OpenTelemetry's API is used here: with no SDK configured (KEEL_TRACING
off, or the `tracing` extra not installed) there is no current span, so
`current_traceparent()` is None and `continued()` is an empty context.
"""

from __future__ import annotations

from opentelemetry import propagate
from opentelemetry.context import Context

_HEADER = "traceparent"


def current_traceparent() -> str | None:
    """The current span as a `traceparent` value, or None when not tracing."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(_HEADER)


def continued(traceparent: str | None) -> Context:
    """A context whose parent is `traceparent` (invalid values are ignored)."""
    return propagate.extract({_HEADER: traceparent} if traceparent else {})
