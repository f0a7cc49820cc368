"""`keel dead-letters list|show|replay`: an operator's view of the dead letters
in the queue (KEEL_REDIS_URL, KEEL_QUEUE_PREFIX), as a BullMQ dashboard has it.

`replay` retries the dead letter's job as a dashboard's retry does; a worker
then replays its task (a fresh budget of attempts) if the task is still
failed at that attempt. Workspace owners have the same over the API
(`/v1/workspaces/{ws}/dead-letters`), limited to their workspace.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from entrypoints.settings import Settings, describe


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "dead-letters",
        help="list, show or replay the queue's dead letters",
        description=__doc__,
        epilog="environment variables it reads:\n"
        + describe("redis_url", "redis_cluster", "queue_prefix"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["list", "show", "replay"])
    parser.add_argument("id", nargs="?", help="show/replay: a job id (<task>.<attempt>) or task id")
    parser.add_argument("--limit", type=int, default=50, help="list: how many, newest first")
    parser.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.action != "list" and not args.id:
        print(f"keel dead-letters {args.action} needs a job or task id", file=sys.stderr)
        return 2
    if not 1 <= args.limit <= 10_000:
        print("keel dead-letters: --limit must be between 1 and 10000", file=sys.stderr)
        return 2
    settings.require("redis_url")
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.redis.dead_letters import BullMQDeadLetters

    assert settings.redis_url is not None
    dead_letters = BullMQDeadLetters(
        settings.redis_url, settings.queue_prefix, settings.redis_cluster
    )
    try:
        if args.action == "list":
            for found in await dead_letters.newest(args.limit):
                failed_at = found.failed_at.isoformat() if found.failed_at else "-"
                print(f"{found.job_id}  {found.kind}  {found.workspace_id}  {failed_at}")
                print(f"    {found.reason}")
            return 0
        if args.action == "show":
            shown = await dead_letters.find(args.id)
            if shown is None:
                return _none(args.id)
            for name in ("job_id", "kind", "workspace_id", "task_id", "attempt", "reason"):
                print(f"{name}: {getattr(shown, name)}")
            print(f"failed_at: {shown.failed_at.isoformat() if shown.failed_at else '-'}")
            return 0
        retried = await dead_letters.retry(args.id)
        if retried is None:
            return _none(args.id)
        print(
            f"retried {retried.job_id}: a worker replays task {retried.task_id} if it is"
            f" still failed at attempt {retried.attempt}"
        )
        return 0
    finally:
        await dead_letters.close()


def _none(name: str) -> int:
    print(f"keel dead-letters: no dead letter {name} in the queue", file=sys.stderr)
    return 1
