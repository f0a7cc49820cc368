"""Redis commands that arrive together, sent as one pipeline
(coalescing.py says why and when a batch goes out).

Two ways in. BatchedCommands is for Keel's own adapters (the cache, the event
bus). PipelinedRedis is a redis-py client that does the same for every
command sent through it, for code that is not ours (BullMQ's worker): what
ioredis calls auto-pipelining, which redis-py does not offer.

A caller hands over a group of commands and gets an answer per command (a
value or that command's own error); a group's commands stay together, in
order, in one pipeline. A group of one command alone goes out as a plain
command. Each command keeps its own keys (a cache read is one MGET of one
workspace's keys, an event one script over one workspace's streams), so
batching changes neither atomicity nor Redis Cluster slots. Scripts go as
EVALSHA, loaded only when Redis answers NOSCRIPT: redis-py's pipelines ask
SCRIPT EXISTS before every execute (a round trip) for scripts registered on
them. Each answer is the plain command's: tests/integration/test_batched_reads.py
and tests/integration/test_pipelined_redis.py keep them equal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from adapters.machinery.coalescing import Coalescer

Command = tuple[Any, ...]
Values = list[bytes | None]
AnyRedis = Redis | RedisCluster
ScriptCall = tuple[Sequence[str], Sequence[Any]]  # keys, args


class BatchedCommands:
    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._batches: Coalescer[tuple[Command, ...], list[Any]] = Coalescer(
            self._send, lambda: RedisConnectionError("the batched command did not complete")
        )

    async def group(self, *commands: Command) -> list[Any]:
        """Each command's answer, or its error (not raised); raises what the
        batch raises (a lost connection, a timeout)."""
        return await self._batches(commands)

    async def call(self, *command: Any) -> Any:
        """One command's answer (raises its error)."""
        (answer,) = await self._batches((command,))
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def mget(self, names: Sequence[str]) -> Values:
        values: Values = await self.call("MGET", *names)
        return values

    async def scripts(self, script: AsyncScript, calls: Sequence[ScriptCall]) -> list[Any]:
        """Each call's answer or error (not raised), run in order; the script is
        loaded once if Redis does not have it (missing for all calls or none,
        so running the missed ones again runs nothing twice)."""
        answers = await self.group(*(_evalsha(script, keys, args) for keys, args in calls))
        missed = [i for i, answer in enumerate(answers) if isinstance(answer, NoScriptError)]
        if missed:
            await self._redis.script_load(script.script)
            again = await self.group(*(_evalsha(script, *calls[i]) for i in missed))
            for i, answer in zip(missed, again, strict=True):
                answers[i] = answer
        return answers

    async def script(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One script call's answer (raises its error)."""
        (answer,) = await self.scripts(script, [(keys, args)])
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def _send(self, groups: list[tuple[Command, ...]]) -> list[list[Any]]:
        calls: list[Call] = [(command, {}) for commands in groups for command in commands]
        answers = await _answers(self._redis.execute_command, self._redis, calls)
        grouped, start = [], 0
        for commands in groups:
            grouped.append(answers[start : start + len(commands)])
            start += len(commands)
        return grouped


def _evalsha(script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Command:
    return ("EVALSHA", script.sha, len(keys), *keys, *args)


Call = tuple[Command, dict[str, Any]]  # a command and redis-py's options for its answer


async def _answers(
    execute: Callable[..., Awaitable[Any]], redis: AnyRedis, calls: list[Call]
) -> list[Any]:
    """Each call's answer, or its error answer (the caller's own, not the batch's):
    a call alone as a plain command (`execute`), several as one pipeline."""
    if len(calls) == 1:
        args, options = calls[0]
        try:
            return [await execute(*args, **options)]
        except ResponseError as error:
            return [error]
    async with redis.pipeline(transaction=False) as pipe:
        for args, options in calls:
            pipe.execute_command(*args, **options)
        return list(await pipe.execute(raise_on_error=False))


# Commands that block, or that change or depend on their connection's state,
# keep a connection to themselves.
_ALONE = frozenset(
    {
        *("BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP"),
        *("XREAD", "XREADGROUP", "WAIT", "WAITAOF", "MONITOR", "SUBSCRIBE", "PSUBSCRIBE"),
        *("SSUBSCRIBE", "CLIENT", "SELECT", "AUTH", "HELLO", "RESET", "QUIT"),
        *("MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"),
    }
)


class PipelinedRedis(Redis):
    """A redis-py client whose commands, sent concurrently, share pipelines.

    Each command still gets its own answer or raises its own error; a
    command of `_ALONE` (a blocking pop, a connection setting) and every
    command of a single-connection client go out as usual. Transactions
    (`pipeline()`) and pub/sub are untouched: they do not use this method.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._calls: Coalescer[Call, Any] = Coalescer(
            self._send, lambda: RedisConnectionError("the pipelined command did not complete")
        )

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
        # redis-py names some commands with their subcommand ("CLIENT SETNAME")
        if self.single_connection_client or name.split(maxsplit=1)[0].upper() in _ALONE:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        return await self._calls((args, options))

    async def _send(self, calls: list[Call]) -> list[Any]:
        # a call alone goes as redis-py sends it, not back through the batches
        return await _answers(super().execute_command, self, calls)
