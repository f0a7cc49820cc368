"""A phase: the stack started with given settings, K agents run against it, the figures.

The progress line goes to stderr; the report (bench.agents.report) is built
from the dictionaries returned here.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from bench.agents.agent import AgentSpec
from bench.agents.counters import difference, read
from bench.agents.load import LoadProcesses
from bench.agents.stats import is_error, requests_over_time, summarise
from bench.agents.system import LOGS, Stack, Target
from entrypoints.http.auth import issue_token

AGENTS_PER_WORKSPACE = 4
DOCUMENTS = (
    ("brand", "Voice", {"voice": "warm, direct, " * 40, "values": ["clarity", "care"]}),
    ("brand", "Naming", {"rules": ["short", "concrete"] * 20}),
    ("audience", "Founders", {"who": "early-stage founders " * 30}),
    ("audience", "Operators", {"who": "ops leads at agencies " * 30}),
    ("product", "Keel", {"facts": ["multi-tenant", "durable tasks", "live progress"] * 15}),
    (
        "product",
        "Pricing",
        {"plans": [{"name": n, "seats": s} for n, s in [("team", 5), ("org", 50)]]},
    ),
)
PROMPTS = ("a launch note", "three taglines", "an onboarding email", "a changelog entry")
LOAD_SATURATED_CPU = 80.0  # % of one core
LOAD_SATURATED_LAG_MS = 50.0


@dataclass(frozen=True)
class Options:
    agents: int = 16
    duration: float = 40.0
    api_processes: int = 2
    workers: int = 2
    load_processes: int = 2
    token_delay_ms: int = 20
    out: Path = Path("bench-results")


def seed(target: Target, options: Options) -> list[AgentSpec]:
    """W workspaces with foundation documents, one member per agent (base URL set later)."""
    specs: list[AgentSpec] = []
    workspaces = math.ceil(options.agents / AGENTS_PER_WORKSPACE)
    with (
        Stack(target, 1, 0, 1, {}) as stack,
        httpx.Client(base_url=stack.apis[0], timeout=30) as http,
    ):
        for w in range(workspaces):
            owner = {"Authorization": f"Bearer {_token(target)}"}
            workspace = http.post("/v1/workspaces", json={"name": f"bench {w}"}, headers=owner)
            workspace.raise_for_status()
            ws = workspace.json()["id"]
            for kind, title, content in DOCUMENTS:
                body = {"kind": kind, "title": title, "content": content, "tags": [kind]}
                http.post(
                    f"/v1/workspaces/{ws}/foundation", json=body, headers=owner
                ).raise_for_status()
            for _ in range(min(AGENTS_PER_WORKSPACE, options.agents - len(specs))):
                token = _token(target)
                me = http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
                user = me.raise_for_status().json()["id"]
                member = {"user_id": user, "role": "member"}
                http.post(
                    f"/v1/workspaces/{ws}/members", json=member, headers=owner
                ).raise_for_status()
                specs.append(AgentSpec("", token, ws, PROMPTS, len(specs)))
    return specs


def _token(target: Target) -> str:
    import uuid

    return issue_token(target.secret, "authenticated", uuid.uuid4(), ttl_seconds=4 * 3600)


TTY = sys.stderr.isatty()


def _progress(label: str, done: float, total: float, steps: int) -> None:
    """A bar redrawn in place on a terminal; elsewhere (a log), a line each time."""
    end = "" if TTY else "\n"
    if done < 0:
        print(f"\r{label:<14} starting the load processes", end=end, file=sys.stderr, flush=True)
        return
    width = 30
    filled = min(width, int(width * done / total)) if total else width
    bar = "#" * filled + "." * (width - filled)
    print(
        f"\r{label:<14} [{bar}] {min(done, total):4.0f}/{total:.0f} s  {steps:,} steps",
        end=end,
        file=sys.stderr,
        flush=True,
    )


def phase(
    label: str, target: Target, specs: list[AgentSpec], options: Options, *, cache: bool
) -> dict[str, Any]:
    settings = {
        "KEEL_CACHE": str(cache).lower(),
        "KEEL_TASK_RATE_PER_MINUTE": "100000",
        "KEEL_SIM_TOKEN_DELAY_MS": str(options.token_delay_ms),
    }
    concurrency = max(8, math.ceil(options.agents / max(1, options.workers)))
    with Stack(target, options.api_processes, options.workers, concurrency, settings) as stack:
        spread = [
            replace(spec, base=stack.apis[i % len(stack.apis)]) for i, spec in enumerate(specs)
        ]
        start = time.time() + 3  # the load processes' imports
        load = LoadProcesses(spread, options.load_processes, start, options.duration)
        load.start()
        before, load_average = read(stack, target), os.getloadavg()[0]
        shown = 0.0
        while load.alive():
            if dead := stack.dead():
                load.terminate()
                raise SystemExit(
                    f"keel bench: stopped, a process of the stack died: {'; '.join(dead)}."
                    f" Logs: {LOGS}/keel-bench-*.log"
                )
            if TTY or time.time() - shown >= 10:
                _progress(label, time.time() - start, options.duration, load.steps.value)
                shown = time.time()
            time.sleep(0.5)
        after = read(stack, target)
        results = load.results(timeout=120)
        _progress(label, options.duration, options.duration, load.steps.value)
        if TTY:
            print(file=sys.stderr)
    system = difference(before, after, sum(r["tally"]["steps"] for r in results))
    system["load_average"] = [load_average, os.getloadavg()[0]]
    return _figures(
        results,
        system,
        options,
    )


def _figures(
    results: list[dict[str, Any]], system: dict[str, Any], options: Options
) -> dict[str, Any]:
    tallies = [r["tally"] for r in results]
    samples = [tuple(s) for t in tallies for s in t["samples"]]
    seconds = max([options.duration, *(s[1] for s in samples)])
    totals = {
        k: sum(t[k] for t in tallies)
        for k in ("steps", "tasks", "cached_tasks", "cancelled", "events", "lost", "duplicated")
    }
    load = [
        {
            "cpu_percent": 100 * r["cpu_s"] / r["wall_s"] if r["wall_s"] else 0.0,
            "loop_lag_p99_ms": r["loop_lag_ms"]["p99"],
        }
        for r in results
    ]
    saturated = any(p["cpu_percent"] > LOAD_SATURATED_CPU for p in load)
    delayed = any(p["loop_lag_p99_ms"] > LOAD_SATURATED_LAG_MS for p in load)
    return {
        "seconds": seconds,
        "operations": summarise(samples, seconds),
        "requests_per_s_over_time": requests_over_time(samples, seconds),
        "errors_5xx": sum(1 for s in samples if int(s[3]) >= 500),
        "errors": sum(1 for s in samples if is_error(int(s[3]))),
        **totals,
        "steps_per_s": totals["steps"] / seconds,
        "problems": [p for t in tallies for p in t["problems"]][:20],
        "load_processes": load,
        "load_saturated": saturated,
        "load_delayed": delayed,
        **system,
    }
