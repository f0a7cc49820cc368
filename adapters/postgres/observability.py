"""Query timing: a duration histogram for every statement, and a log line for
each one slower than the threshold, with its SQL as sent (placeholders, never
values: no tenant data in logs) and whatever context the caller bound (request
id, route, task); with tracing on, a span per statement too."""

from __future__ import annotations

import re
import time
from typing import Any

import structlog
from prometheus_client import Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

QUERY_SECONDS = Histogram(
    "keel_db_query_seconds",
    "Postgres statement duration",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
logger = structlog.get_logger("keel.db")
_SPACE = re.compile(r"\s+")
MAX_SQL = 2000


def normalized(statement: str) -> str:
    return _SPACE.sub(" ", statement).strip()[:MAX_SQL]


def record(statement: str, seconds: float, slow_ms: float) -> None:
    """Count a statement's duration; log it when it took `slow_ms` or more."""
    QUERY_SECONDS.observe(seconds)
    if seconds * 1000 >= slow_ms:
        logger.warning(
            "slow query", sql=normalized(statement), duration_ms=round(seconds * 1000, 2)
        )


def instrument(engine: AsyncEngine, slow_ms: float) -> None:
    """Time every statement `engine` runs; log those over `slow_ms`."""

    def before(
        _conn: Any, _cursor: Any, _statement: Any, _params: Any, context: Any, _many: Any
    ) -> None:
        context._keel_started = time.perf_counter()

    def after(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: Any
    ) -> None:
        record(statement, time.perf_counter() - context._keel_started, slow_ms)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)


def trace_statements(engine: AsyncEngine) -> None:
    """A span per SQL statement on `engine` (with KEEL_TRACING: entrypoints/tracing.py
    installs the tracer provider first).

    The instrumentation declares SQLAlchemy below 2.1; the engine events it
    uses are unchanged in 2.1, and tests/integration/test_tracing.py checks
    that the spans arrive, so its version check is skipped."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, skip_dep_check=True)
