"""Structured JSON logs on standard output, one object per line.

Keel's own events (the access log, slow queries) are structlog loggers on
structlog's native path: processors, then JSON bytes written straight to
stdout. The standard library's records (uvicorn, SQLAlchemy, Alembic, Keel
modules on `logging`) are rendered the same way by a ProcessorFormatter.
Context bound with structlog.contextvars (request id, user, workspace,
route, task) is merged into every line, whichever logger wrote it.

The access log writes a line per request, so its path matters: through the
standard library it was a sixth of a cached read's time.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import msgspec
import structlog

_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _json(event: dict[str, Any], default: Callable[[Any], Any]) -> bytes:
    return msgspec.json.encode(event, enc_hook=default)


def configure_logging(level: str = "INFO") -> None:
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_json),
        ],
        logger_factory=structlog.BytesLoggerFactory(sys.stdout.buffer),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_SHARED],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Under plain `uvicorn`, its own logging set-up is in place already: its
    # lines become JSON lines, and its access log (full URLs, query strings,
    # stream tickets included) gives way to Keel's own access line.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
