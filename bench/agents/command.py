"""The run `keel bench` makes: seed, cache on, cache off (or the scaling table), report."""

from __future__ import annotations

import json
import os
import platform
import shlex
import signal
import sys
from dataclasses import asdict
from typing import Any

from bench.agents import plot
from bench.agents.report import compare, scaling_markdown, write
from bench.agents.runner import Options, phase, seed
from bench.agents.scaling import scaling
from bench.agents.system import target


def machine() -> str:
    system = f"{platform.system()} {platform.machine()}"
    return f"{os.cpu_count()} cores, {system}, Python {platform.python_version()}"


def run(
    options: Options, *, scaling_table: bool = False, argv: list[str] | None = None
) -> dict[str, Any]:
    """Runs the benchmark, writes its files under options.out and returns every figure."""
    # SIGTERM unwinds like Ctrl-C: the stack stops and the temporary database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = "keel bench" + "".join(f" {shlex.quote(a)}" for a in (argv or []))
    with target() as system:
        print(f"keel bench: services: {system.origin}; seeding", file=sys.stderr)
        specs = seed(system, options)
        result: dict[str, Any] = {
            "command": command,
            "machine": machine(),
            "services": system.origin,
            "options": {**asdict(options), "out": str(options.out)},
        }
        if scaling_table:
            result["scaling"] = scaling(system, specs, options)
        else:
            result["cache_on"] = phase("cache on", system, specs, options, cache=True)
            result["cache_off"] = phase("cache off", system, specs, options, cache=False)
            result["comparison"] = compare(result["cache_on"], result["cache_off"])
    if scaling_table:
        text = "\n".join(scaling_markdown(result["scaling"]))
        options.out.mkdir(parents=True, exist_ok=True)
        (options.out / "scaling.md").write_text(text)
        (options.out / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")
        print(text)
        return result
    print(write(result, options.out))
    if plot.available():
        plot.draw(result, options.out / "plot.png")
    else:
        print(f"no plot.png: {plot.INSTALL}", file=sys.stderr)
    print(f"keel bench: report.md, report.json and plot.png in {options.out}/", file=sys.stderr)
    return result


def exit_status(result: dict[str, Any]) -> int:
    """1 when an event was lost or duplicated or an answer was a 5xx (the run proves nothing)."""
    phases = [result[k] for k in ("cache_on", "cache_off") if k in result] + result.get(
        "scaling", []
    )
    bad = any(p["lost"] or p["duplicated"] or p["errors_5xx"] for p in phases)
    return 1 if bad else 0
