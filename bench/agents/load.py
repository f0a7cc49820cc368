"""The load processes: each runs its share of the agents on one event loop.

Each reports what its agents recorded, the CPU time it used and how late its
event loop woke up (a loop that wakes late is a saturated load generator,
and its latencies would be its own, not Keel's).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from contextlib import AsyncExitStack
from dataclasses import asdict
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from bench.agents.agent import Agent, AgentSpec, Tally
from bench.agents.stats import percentiles

LAG_PERIOD_S = 0.05


async def _lag(deadline: float, lags: list[float]) -> None:
    while time.time() < deadline:
        began = time.perf_counter()
        await asyncio.sleep(LAG_PERIOD_S)
        lags.append((time.perf_counter() - began - LAG_PERIOD_S) * 1000)


async def _run(
    specs: list[AgentSpec], start: float, seconds: float, steps: Synchronized[int]
) -> dict[str, Any]:
    deadline = start + seconds
    tally, lags = Tally(), list[float]()

    def on_step() -> None:
        with steps.get_lock():
            steps.value += 1

    agents = [Agent(spec, tally, start) for spec in specs]
    async with AsyncExitStack() as clients:
        # Each client builds its TLS context, which blocks the loop: before the start.
        https = [await clients.enter_async_context(agent.client()) for agent in agents]
        await asyncio.sleep(max(0.0, start - time.time()))
        cpu, wall = time.process_time(), time.perf_counter()
        runs = [
            agent.run(http, deadline, on_step) for agent, http in zip(agents, https, strict=True)
        ]
        await asyncio.gather(_lag(deadline, lags), *runs)
        wall = time.perf_counter() - wall
    return {
        "tally": asdict(tally),
        "cpu_s": time.process_time() - cpu,
        "wall_s": wall,
        "loop_lag_ms": percentiles(lags),
    }


def _main(
    specs: list[AgentSpec],
    start: float,
    seconds: float,
    steps: Synchronized[int],
    results: multiprocessing.Queue[dict[str, Any]],
) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    results.put(asyncio.run(_run(specs, start, seconds, steps)))


class LoadProcesses:
    """`processes` load processes sharing `specs` round robin; all start at `start` (wall clock)."""

    def __init__(
        self, specs: list[AgentSpec], processes: int, start: float, seconds: float
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.steps = context.Value("q", 0)
        self._results: multiprocessing.Queue[dict[str, Any]] = context.Queue()
        shares = [specs[i::processes] for i in range(processes)]
        self._processes = [
            context.Process(
                target=_main, args=(share, start, seconds, self.steps, self._results), daemon=True
            )
            for share in shares
            if share
        ]

    def start(self) -> list[int]:
        for process in self._processes:
            process.start()
        return [process.pid for process in self._processes if process.pid is not None]

    def alive(self) -> bool:
        return any(process.is_alive() for process in self._processes) and (
            self._results.qsize() < len(self._processes)
        )

    def terminate(self) -> None:
        for process in self._processes:
            process.terminate()
            process.join(10)

    def results(self, timeout: float) -> list[dict[str, Any]]:
        found = [self._results.get(timeout=timeout) for _ in self._processes]
        for process in self._processes:
            process.join(10)
        return found
