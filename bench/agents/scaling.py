"""`keel bench --scaling`: the same load on 1, 2 and 4 API processes (and as many
workers), with the CPU each kind of process used, and where the limit is."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from bench.agents.agent import AgentSpec
from bench.agents.runner import Options, phase
from bench.agents.stats import DERIVED
from bench.agents.system import Target

PROCESSES = (1, 2, 4)
BUSY = 85.0  # % of one core (a process) or of all of them (the machine)


def limit(cpu: dict[str, list[float]], machine: float, cores: int) -> str:
    """Which CPU bounds the run: the machine's (busy with this run or other work), one
    process's, or none (latency-bound). `machine`: every core's busy time, in % of one."""
    totals = {kind: sum(values) for kind, values in cpu.items()}
    busiest = max(totals, key=lambda kind: totals[kind]) if totals else "none"
    everything = sum(totals.values())
    if max(machine, everything) >= BUSY * cores:
        return (
            f"the machine's {cores} cores: {machine:.0f} % of {100 * cores} % busy,"
            f" {everything:.0f} % of it this run's (most: {busiest}), the rest other work"
        )
    hot = [kind for kind, values in cpu.items() if any(v >= BUSY for v in values)]
    if hot:
        return f"one {hot[0]} process at a full core"
    return f"no CPU ({everything:.0f} % of {100 * cores} %): the agents wait on the model's tokens"


def scaling(target: Target, specs: list[AgentSpec], options: Options) -> list[dict[str, Any]]:
    rows = []
    cores = os.cpu_count() or 1
    for n in PROCESSES:
        run = replace(options, api_processes=n, workers=n)
        figures = phase(f"{n} API + {n} W", target, specs, run, cache=True)
        cpu = dict(figures["cpu_percent"])
        cpu["load"] = [p["cpu_percent"] for p in figures["load_processes"]]
        requests = sum(
            op["count"] for name, op in figures["operations"].items() if name not in DERIVED
        )
        end_to_end = figures["operations"].get("task_end_to_end", {})
        rows.append(
            {
                "processes": n,
                "steps_per_s": figures["steps_per_s"],
                "requests_per_s": requests / figures["seconds"],
                "end_to_end_p50_ms": end_to_end.get("p50_ms", float("nan")),
                "end_to_end_p99_ms": end_to_end.get("p99_ms", float("nan")),
                "cpu_percent": cpu,
                "cpu_percent_total": {kind: sum(values) for kind, values in cpu.items()},
                "errors_5xx": figures["errors_5xx"],
                "lost": figures["lost"],
                "duplicated": figures["duplicated"],
                "machine_cpu_percent": figures["machine_cpu_percent"],
                "limit": limit(cpu, figures["machine_cpu_percent"], cores),
            }
        )
    return rows
