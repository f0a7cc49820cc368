"""report.json (every figure) and report.md (a BENCHMARKS.md section) of a run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

# The paths the cache serves: a document read (the document cache and the
# fast path in front of the framework) and a repeated task (the AI-result cache).
CACHED_PATHS = ("foundation_get", "task_end_to_end_repeat")
CLAIM = 0.5  # the seed plan's "> 50 % faster": p50 latency at least this much lower


def compare(on: dict[str, Any], off: dict[str, Any]) -> dict[str, Any]:
    """Per operation, the cached / uncached p50 ratio; then the seed plan's claim."""
    ratios = {}
    for name, figures in on["operations"].items():
        other = off["operations"].get(name)
        if other and other["p50_ms"] and not math.isnan(figures["p50_ms"] + other["p50_ms"]):
            ratios[name] = figures["p50_ms"] / other["p50_ms"]
    paths = {name: 1 - ratios[name] for name in CACHED_PATHS if name in ratios}
    holds = bool(paths) and all(lower > CLAIM for lower in paths.values())
    line = "; ".join(
        f"{name} p50 {on['operations'][name]['p50_ms']:.1f} ms cached vs"
        f" {off['operations'][name]['p50_ms']:.1f} ms uncached, {lower:.0%} lower"
        for name, lower in paths.items()
    )
    verdict = "holds" if holds else "does NOT hold"
    return {
        "p50_cached_over_uncached": ratios,
        "claim": {
            "text": "cached paths > 50 % faster (p50 latency more than 50 % lower)",
            "latency_lower": paths,
            "holds": holds,
            "line": f'Seed claim "cached paths > 50 % faster": {verdict} ({line})',
        },
    }


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def _errors(figures: dict[str, Any] | None) -> str:
    if not figures or not figures["errors"]:
        return "0"
    return ", ".join(f"{count}x{status}" for status, count in figures["errors"].items())


def _cpu(cpu: dict[str, list[float]]) -> str:
    return ", ".join(
        f"{kind} {' + '.join(f'{v:.0f}' for v in values)}" for kind, values in sorted(cpu.items())
    )


def _load(figures: dict[str, Any]) -> str:
    """The load generator's CPU and event-loop lag, and what they say about the figures."""
    processes = figures["load_processes"]
    cpu = ", ".join(f"{p['cpu_percent']:.0f} %" for p in processes)
    lag = ", ".join(f"{p['loop_lag_p99_ms']:.1f} ms" for p in processes)
    if figures["load_saturated"]:
        verdict = "SATURATED: a load process used most of a core, its latencies include its own"
    elif figures.get("load_delayed"):
        verdict = (
            "not saturated (little CPU), but its event loop woke late: the machine is"
            " oversubscribed, and every process, Keel's too, waited for a core"
        )
    else:
        verdict = "not saturated"
    return f"CPU {cpu} of one core, event-loop lag p99 {lag}: {verdict}"


def _failed(figures: dict[str, Any]) -> str:
    failed = figures.get("cache_read_errors", 0)
    if not failed:
        return ""
    return (
        f" ({failed:.0f} cache reads timed out or failed on Redis and were served from"
        " Postgres: KEEL_CACHE_TIMEOUT_MS)"
    )


def _per_step(figures: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("postgres_statements_per_step", "Postgres statements"),
        ("postgres_transactions_per_step", "Postgres transactions"),
        ("redis_commands_per_step", "Redis commands"),
    ):
        if figures.get(key) is not None:
            parts.append(f"{label} {figures[key]:.1f}")
    top = figures.get("redis_top_commands_per_step") or {}
    if top:
        parts[-1] += " (" + ", ".join(f"{name} {n:.1f}" for name, n in top.items()) + ")"
    return ", ".join(parts) or "not measured (no owner URL)"


def markdown(run: dict[str, Any]) -> str:
    on, off, options = run["cache_on"], run["cache_off"], run["options"]
    lines = [
        "## Concurrent agents (`keel bench`)",
        "",
        f"`{run['command']}`: {options['agents']} agents in {options['load_processes']} load"
        f" processes against {options['api_processes']} API processes and {options['workers']}"
        f" workers, {on['seconds']:.0f} s with the cache on, then the same with `KEEL_CACHE=false`;"
        f" simulated model (24 tokens, {options['token_delay_ms']} ms apart). Services:"
        f" {run['services']}. Machine: {run['machine']}.",
        "",
        "| operation | cache on /s | p50 | p95 | p99 ms | errors"
        " | cache off /s | p50 | p95 | p99 ms | errors | on/off p50 |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    ratios = run["comparison"]["p50_cached_over_uncached"]
    for name in sorted(set(on["operations"]) | set(off["operations"])):
        a, b = on["operations"].get(name), off["operations"].get(name)
        cells = []
        for figures in (a, b):
            if figures is None:
                cells += ["-"] * 5
            else:
                cells += [
                    f"{figures['per_s']:,.1f}",
                    _ms(figures["p50_ms"]),
                    _ms(figures["p95_ms"]),
                    _ms(figures["p99_ms"]),
                    _errors(figures),
                ]
        ratio = f"{ratios[name]:.2f}" if name in ratios else "-"
        lines.append(f"| {name} | {' | '.join(cells)} | {ratio} |")
    lines.append("")
    for label, figures in (("cache on", on), ("cache off", off)):
        hit = figures["cache_hit_ratio"]
        lines += [
            f"- **{label}**: {figures['steps']:,} agent steps ({figures['steps_per_s']:.1f}/s);"
            f" {figures['tasks']:,} tasks, {figures['cached_tasks']:,} answered by the AI-result"
            f" cache, {figures['cancelled']:,} cancelled; {figures['events']:,} events received,"
            f" **{figures['lost']} lost, {figures['duplicated']} duplicated**;"
            f" {figures['errors_5xx']} answers 5xx. Cache hit ratio:"
            f" {'n/a (off)' if hit is None else f'{hit:.1%}'}"
            f"{_failed(figures)}. Per agent step:"
            f" {_per_step(figures)}. CPU, % of one core: {_cpu(figures['cpu_percent'])}"
            f" (the whole machine: {figures.get('machine_cpu_percent', float('nan')):.0f} % busy)."
            f" Load generator: {_load(figures)}. Machine load average"
            f" {figures['load_average'][0]:.1f} at the start, {figures['load_average'][1]:.1f} at"
            f" the end.",
        ]
    lines += ["", f"- {run['comparison']['claim']['line']}.", ""]
    if run.get("scaling"):
        lines += scaling_markdown(run["scaling"])
    return "\n".join(lines) + "\n"


def scaling_markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| API processes + workers | steps/s | requests/s | task end-to-end p50 / p99 ms"
        " | CPU % of one core: API, workers, Postgres, Redis, load; the machine | limit |",
        "|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        cpu = row["cpu_percent_total"]
        lines.append(
            f"| {row['processes']} | {row['steps_per_s']:.1f} | {row['requests_per_s']:,.0f} |"
            f" {_ms(row['end_to_end_p50_ms'])} / {_ms(row['end_to_end_p99_ms'])} |"
            f" {cpu.get('api', 0):.0f}, {cpu.get('worker', 0):.0f}, {cpu.get('postgres', 0):.0f},"
            f" {cpu.get('redis', 0):.0f}, {cpu.get('load', 0):.0f};"
            f" {row.get('machine_cpu_percent', float('nan')):.0f} | {row['limit']} |"
        )
    return [*lines, ""]


def write(run: dict[str, Any], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(run)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps(run, indent=2, default=str) + "\n")
    return text
