"""keel bench's figures: percentiles, per-operation summaries, the event checks, the claim."""

from __future__ import annotations

import math
from typing import Any

from bench.agents.agent import Event, check_events
from bench.agents.report import compare, markdown
from bench.agents.scaling import limit
from bench.agents.stats import percentiles, requests_over_time, summarise


def test_percentiles_are_the_inclusive_quantiles() -> None:
    assert percentiles([float(v) for v in range(1, 101)]) == {
        "p50": 50.5,
        "p95": 95.05,
        "p99": 99.01,
    }
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}
    assert all(math.isnan(v) for v in percentiles([]).values())


def test_a_summary_counts_errors_by_status_and_keeps_them_out_of_the_latencies() -> None:
    samples = [("get", 0.5, 10.0, 200), ("get", 1.5, 30.0, 200), ("get", 1.7, 999.0, 503)]
    samples += [("get", 1.9, 5000.0, 0), ("task_end_to_end", 1.9, 700.0, 200)]
    summary = summarise(samples, seconds=2.0)
    assert summary["get"]["count"] == 4
    assert summary["get"]["per_s"] == 2.0
    assert summary["get"]["p50_ms"] == 20.0
    assert summary["get"]["errors"] == {"0": 1, "503": 1}
    assert summary["task_end_to_end"]["errors"] == {}
    # A derived figure (an agent step's, not a request) is not in the request rate.
    assert requests_over_time(samples, seconds=2.0) == [1, 3, 0]


def _event(id_: str, kind: str, **data: Any) -> Event:
    return Event(id_, kind, {"type": kind, "data": data})


TASK = {"id": "t", "status": "succeeded", "cached": False, "result": {"text": "a b "}}
STREAM = [
    _event("1-0", "task.queued"),
    _event("2-0", "task.started"),
    _event("2-1", "task.token", text="a "),
    _event("3-0", "task.token", text="b "),
    _event("3-1", "task.succeeded"),
]


def test_a_whole_stream_has_nothing_lost_or_duplicated() -> None:
    assert check_events(STREAM, TASK) == (0, 0, [])


def test_a_repeated_or_out_of_order_id_is_a_duplicate() -> None:
    lost, duplicated, _ = check_events([*STREAM[:3], STREAM[2], *STREAM[3:]], TASK)
    assert (lost, duplicated) == (1, 1)  # the token's text is there twice, too


def test_a_missing_token_start_or_ending_is_lost() -> None:
    assert check_events([*STREAM[:2], *STREAM[3:]], TASK)[0] == 1
    assert check_events([STREAM[0], *STREAM[2:]], TASK)[0] == 1
    lost, _, problems = check_events(STREAM[:-1], TASK)
    assert lost == 1
    assert "endings []" in problems[0]
    # A result from the AI-result cache has no tokens to add up.
    cached = {**TASK, "cached": True}
    assert check_events([STREAM[0], STREAM[1], STREAM[4]], cached) == (0, 0, [])


def _phase(get_ms: float, repeat_ms: float) -> dict[str, Any]:
    def op(p50: float) -> dict[str, Any]:
        return {
            "count": 10,
            "per_s": 1.0,
            "p50_ms": p50,
            "p95_ms": p50,
            "p99_ms": p50,
            "errors": {},
        }

    return {
        "seconds": 10.0,
        "operations": {"foundation_get": op(get_ms), "task_end_to_end_repeat": op(repeat_ms)},
        "steps": 10,
        "steps_per_s": 1.0,
        "tasks": 10,
        "cached_tasks": 3,
        "cancelled": 1,
        "events": 100,
        "lost": 0,
        "duplicated": 0,
        "errors_5xx": 0,
        "cache_hit_ratio": 0.9,
        "cache_read_errors": 0,
        "cpu_percent": {"api": [50.0]},
        "load_processes": [{"cpu_percent": 20.0, "loop_lag_p99_ms": 2.0}],
        "load_saturated": False,
        "load_average": [1.0, 2.0],
        "requests_per_s_over_time": [1, 2],
    }


def test_the_claim_holds_only_when_every_cached_path_is_over_half_faster() -> None:
    holds = compare(_phase(4.0, 100.0), _phase(10.0, 500.0))
    assert holds["p50_cached_over_uncached"]["foundation_get"] == 0.4
    assert holds["claim"]["holds"]
    assert (
        "holds (foundation_get p50 4.0 ms cached vs 10.0 ms uncached, 60% lower"
        in (holds["claim"]["line"])
    )
    assert not compare(_phase(6.0, 100.0), _phase(10.0, 500.0))["claim"]["holds"]


def test_the_markdown_report_carries_the_table_and_the_claim() -> None:
    on, off = _phase(4.0, 100.0), _phase(10.0, 500.0)
    run = {
        "command": "keel bench",
        "machine": "2 cores",
        "services": "embedded servers",
        "options": {
            "agents": 4,
            "load_processes": 1,
            "api_processes": 1,
            "workers": 1,
            "token_delay_ms": 20,
        },
        "cache_on": on,
        "cache_off": off,
        "comparison": compare(on, off),
    }
    text = markdown(run)
    assert text.startswith("## Concurrent agents (`keel bench`)")
    assert (
        "| foundation_get | 1.0 | 4.0 | 4.0 | 4.0 | 0 | 1.0 | 10.0 | 10.0 | 10.0 | 0 | 0.40 |"
        in text
    )
    assert "**0 lost, 0 duplicated**" in text
    assert 'Seed claim "cached paths > 50 % faster": holds' in text


def test_the_limit_is_the_machine_when_its_cores_are_busy_whoever_uses_them() -> None:
    light = {"api": [30.0], "worker": [20.0]}
    assert limit(light, machine=190.0, cores=2).startswith("the machine's 2 cores: 190 %")
    assert limit({"api": [95.0], "worker": [10.0]}, machine=120.0, cores=2) == (
        "one api process at a full core"
    )
    assert limit(light, machine=60.0, cores=2).startswith("no CPU")
