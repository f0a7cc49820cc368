"""plot.png: latency percentiles per operation with the cache on and off, and
the request rate over time. matplotlib is imported here only (the `dev` extra)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

INSTALL = "keel bench draws its plot with matplotlib: .venv/bin/pip install -e '.[dev]'"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def draw(run: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    on, off = run["cache_on"], run["cache_off"]
    names = sorted(set(on["operations"]) | set(off["operations"]))
    figure, (latency, rate) = plt.subplots(2, 1, figsize=(12, 9), height_ratios=(3, 2))
    width = 0.13
    for index, (phase, label, color) in enumerate(
        ((on, "cache on", "tab:blue"), (off, "cache off", "tab:orange"))
    ):
        for offset, (percent, shade) in enumerate((("p50", 1.0), ("p95", 0.65), ("p99", 0.35))):
            values = [phase["operations"].get(n, {}).get(f"{percent}_ms", math.nan) for n in names]
            where = [i + (index * 3 + offset - 2.5) * width for i in range(len(names))]
            latency.bar(where, values, width, color=color, alpha=shade, label=f"{label} {percent}")
    latency.set_yscale("log")
    latency.set_ylabel("ms (log)")
    latency.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    latency.set_title(f"{run['command']}: latency per operation")
    latency.legend(ncol=2, fontsize=8)
    for phase, label in ((on, "cache on"), (off, "cache off")):
        rate.plot(phase["requests_per_s_over_time"], label=label)
    rate.set_xlabel("s since the phase began")
    rate.set_ylabel("requests/s")
    rate.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
