"""OpenTelemetry tracing: on with KEEL_TRACING=true and the `tracing` extra.

The SDK's own variables configure the export: OTLP over HTTP to
OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318), its headers,
OTEL_SERVICE_NAME (default keel-api / keel-worker) and the OTEL_BSP_*
batching. Spans: each HTTP request (an incoming `traceparent` is honoured,
the fast read path included), each SQL statement, each Redis command, and
each task attempt in the worker, as a child of the request that created the
task (the trace travels in the task row and the queued job:
adapters/tracing.py).
"""

from __future__ import annotations

import os
from typing import Any

from entrypoints.settings import ConfigError, Settings

_EXCLUDED = "healthz,readyz,metrics"


def configure_tracing(settings: Settings, service: str) -> None:
    """Install the SDK's tracer provider and the Redis instrumentation, once per process."""
    if not settings.tracing:
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(
            ["KEEL_TRACING=true needs the tracing extra: pip install 'keel[tracing]'"]
        ) from None
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument()


def traced(app: Any) -> Any:
    """`app` inside a span per HTTP request, named by its route once routed."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    def details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return f"{scope.get('method', 'HTTP')} request", {}

    return OpenTelemetryMiddleware(app, excluded_urls=_EXCLUDED, default_span_details=details)
