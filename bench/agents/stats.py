"""Percentiles and per-operation summaries of the samples the agents record.

A sample is one timed operation: (operation, seconds since the phase began
when it ended, latency in ms, HTTP status; 0 when no answer came). The
percentiles are the standard library's (`statistics.quantiles`, inclusive
method); what is written here is only which figures the report carries.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

Sample = tuple[str, float, float, int]

# Figures derived from an agent step rather than one HTTP request: they have
# latencies but no place in the request rate.
DERIVED = frozenset(
    {"task_end_to_end", "task_enqueue_to_start", "sse_first_event", "sse_publish_to_client"}
)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of `values` (each the single value when there is one)."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    if len(values) == 1:
        return dict.fromkeys(("p50", "p95", "p99"), float(values[0]))
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


def is_error(status: int) -> bool:
    return status == 0 or status >= 400


def summarise(samples: Iterable[Sample], seconds: float) -> dict[str, dict[str, Any]]:
    """Per operation: count, rate per second over `seconds`, percentiles (ms) of
    the answered ones, and the errors by status ("0": no answer)."""
    latencies: dict[str, list[float]] = {}
    errors: dict[str, Counter[str]] = {}
    counts: Counter[str] = Counter()
    for operation, _, latency_ms, status in samples:
        counts[operation] += 1
        errors.setdefault(operation, Counter())
        if is_error(status):
            errors[operation][str(status)] += 1
        else:
            latencies.setdefault(operation, []).append(latency_ms)
    return {
        operation: {
            "count": counts[operation],
            "per_s": counts[operation] / seconds if seconds > 0 else 0.0,
            **{
                f"{name}_ms": value
                for name, value in percentiles(latencies.get(operation, [])).items()
            },
            "errors": dict(sorted(errors[operation].items())),
        }
        for operation in sorted(counts)
    }


def requests_over_time(samples: Iterable[Sample], seconds: float) -> list[int]:
    """HTTP requests answered in each whole second of the phase."""
    buckets = [0] * max(1, int(seconds) + 1)
    for operation, at, _, _ in samples:
        if operation not in DERIVED:
            buckets[min(len(buckets) - 1, max(0, int(at)))] += 1
    return buckets


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None
