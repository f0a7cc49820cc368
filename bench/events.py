"""Fan-out latency of task events: publish → an SSE client has the message.

    .venv/bin/python -m bench.events [--events 200] [--subscribers 100 1000] [--json FILE]

One API process (uvicorn, as `keel api` runs it) serves N SSE streams of one
workspace. This process holds the N clients (httpx, one event loop) and
publishes through the same bus a worker uses, one event every `--interval-ms`
(more apart at 1,000 subscribers, so that the clients keep up). Each event
carries the time it was published; a client's latency is the time it parsed
the message minus that. Same host, same clock. The clients share one core
with nothing else; at 1,000 they are a large part of what is measured.
--json FILE holds {"rows": {"events_<N>_streams": {"messages", "p50_ms",
"p99_ms", "max_ms"}}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx

from adapters.redis.client import create_listener, create_redis
from adapters.redis.events import RedisEventBus
from bench.cache import SECRET, _server, keel_env
from domain.events import EventType, TaskEvent
from entrypoints.devstack.services import test_services
from entrypoints.http.auth import issue_token


async def _subscriber(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    expected: int,
    ready: asyncio.Event,
    latencies: list[float],
) -> None:
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, response.status_code
        ready.set()
        seen = 0
        async for line in response.aiter_lines():
            if line.startswith("data: ") and '"at":"' in line:
                received = time.time()
                at = line.split('"at":"', 1)[1].split('"', 1)[0]
                latencies.append((received - datetime.fromisoformat(at).timestamp()) * 1000)
                seen += 1
                if seen == expected:
                    return


async def _run(
    base: str, headers: dict[str, str], redis_url: str, subscribers: int, events: int, gap_s: float
) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=subscribers + 10, max_keepalive_connections=0)
    client, listener = create_redis(redis_url), create_listener(redis_url)
    bus = RedisEventBus(client, listener)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        created = await http.post(
            f"{base}/v1/workspaces", json={"name": "fan-out"}, headers=headers
        )
        workspace = uuid.UUID(created.json()["id"])
        url = f"{base}/v1/workspaces/{workspace}/events"
        readies = [asyncio.Event() for _ in range(subscribers)]
        streams = [
            asyncio.create_task(_subscriber(http, url, headers, events, ready, latencies))
            for ready in readies
        ]
        await asyncio.gather(*(ready.wait() for ready in readies))
        await asyncio.sleep(1.0)  # every subscription has joined the bus
        task = uuid.uuid4()
        for index in range(events):
            await bus.publish(TaskEvent(workspace, task, EventType.PROGRESS, {"progress": index}))
            await asyncio.sleep(gap_s)
        await asyncio.wait_for(asyncio.gather(*streams), 120)
    await client.aclose()
    await listener.aclose()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--interval-ms", type=float, default=50)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    rows: list[str] = []
    figures: dict[str, dict[str, float]] = {}
    streams = str(max(args.subscribers) + 10)
    with test_services() as services, keel_env(services, KEEL_SSE_STREAMS_PER_USER=streams) as env:
        headers = {"Authorization": f"Bearer {issue_token(SECRET, 'authenticated', uuid.uuid4())}"}
        with _server("entrypoints.http.asgi:app", env) as base:
            for subscribers in args.subscribers:
                gap_s = args.interval_ms / 1000 * max(1, subscribers // 250)
                started = time.monotonic()
                latencies = asyncio.run(
                    _run(base, headers, services.redis_url, subscribers, args.events, gap_s)
                )
                assert len(latencies) == subscribers * args.events, "a message was lost"
                cuts = statistics.quantiles(latencies, n=100)
                rows.append(
                    f"| {subscribers:,} | {args.events} every {gap_s * 1000:.0f} ms |"
                    f" {len(latencies):,} | {statistics.median(latencies):.1f} |"
                    f" {cuts[98]:.1f} | {max(latencies):.1f} |"
                )
                figures[f"events_{subscribers}_streams"] = {
                    "messages": len(latencies),
                    "p50_ms": statistics.median(latencies),
                    "p99_ms": cuts[98],
                    "max_ms": max(latencies),
                }
                print(f"{subscribers} subscribers done in {time.monotonic() - started:.0f} s")
    print(f"\nservices: {services.origin}\n")
    print("| subscribers | events | messages received | p50 ms | p99 ms | max ms |")
    print("|---:|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps({"rows": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
