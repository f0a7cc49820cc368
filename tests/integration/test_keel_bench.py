"""`keel bench` as a user runs it: its own services, API processes, workers and
load processes, then a report. A short run must lose and duplicate no event,
answer no 5xx, and write every operation to report.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

OPERATIONS = {
    "foundation_list",
    "foundation_get",
    "ui_state_put",
    "ui_state_get",
    "task_create",
    "stream_ticket",
    "task_events",
    "task_get",
    "task_end_to_end",
    "task_enqueue_to_start",
    "sse_first_event",
    "sse_publish_to_client",
}


@pytest.mark.slow
def test_a_short_keel_bench_loses_no_event_and_answers_no_5xx(tmp_path: Path) -> None:
    out = tmp_path / "results"
    # The command's own services (the tests' KEEL_TEST_* URLs, when set, as in CI's second pass).
    env = {k: v for k, v in os.environ.items() if k not in ("KEEL_DATABASE_URL", "KEEL_REDIS_URL")}
    command = [sys.executable, "-m", "entrypoints.cli", "bench", "--agents", "4"]
    command += ["--duration", "5", "--api-processes", "1", "--workers", "1"]
    command += ["--load-processes", "1", "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    for phase in ("cache_on", "cache_off"):
        figures = report[phase]
        assert figures["steps"] > 0
        assert figures["lost"] == 0, figures["problems"]
        assert figures["duplicated"] == 0, figures["problems"]
        assert figures["errors_5xx"] == 0
        assert set(figures["operations"]) >= OPERATIONS
    assert report["cache_on"]["cache_hit_ratio"] > 0
    assert report["cache_off"]["cache_hit_ratio"] is None
    assert "Seed claim" in (out / "report.md").read_text()
    assert (out / "plot.png").stat().st_size > 0
