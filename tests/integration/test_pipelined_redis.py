"""The worker's BullMQ side against the real Redis: the auto-pipelining
client (adapters/machinery/pipelining.py PipelinedRedis) — commands sent together
share a pipeline, each gets its own answer (redis-py's parsing included) or
its own error, scripts load themselves, a blocking command never holds up
the others — and FetchingWorker (adapters/machinery/fetching.py), which takes the
next job while completing one: every job runs once, failures stay failures,
closing leaves no job taken and not run."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bullmq import Queue, Worker
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from adapters.machinery.fetching import FetchingWorker
from adapters.machinery.pipelining import PipelinedRedis
from adapters.redis.consumer import worker_connection
from adapters.redis.queue import add_jobs, queue_connection
from entrypoints.devstack.services import Services
from tests.redis_cluster import standalone_redis


class _Counted(PipelinedRedis):
    """Counts the pipelines and the commands sent alone."""

    pipelines = 0
    alone = 0

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        self.pipelines += 1
        return super().pipeline(transaction, shard_hint)

    async def _send(self, calls: list[Any]) -> list[Any]:
        self.alone += len(calls) == 1
        return await super()._send(calls)


@pytest.fixture
async def client(services: Services) -> AsyncIterator[_Counted]:
    counted = _Counted.from_url(services.redis_url, decode_responses=True)
    assert isinstance(counted, _Counted)
    yield counted
    await counted.aclose()


@standalone_redis  # PipelinedRedis is a single Redis: a cluster bypasses it
async def test_commands_sent_together_share_one_pipeline_and_get_their_own_answers(
    client: _Counted,
) -> None:
    key = f"pipelined:{uuid.uuid4().hex}"
    await client.hset(f"{key}:h", mapping={"a": "1", "b": "2"})
    await client.set(f"{key}:s", "text")
    before = client.pipelines
    answers = await asyncio.gather(
        client.hgetall(f"{key}:h"),
        client.get(f"{key}:s"),
        client.incr(f"{key}:n"),
        client.exists(f"{key}:h", f"{key}:none"),
        client.set(f"{key}:s2", "x", nx=True),
        client.zadd(f"{key}:z", {"m": 3}),
        client.zrange(f"{key}:z", 0, -1, withscores=True),
    )
    assert client.pipelines == before + 1
    # each answer parsed as a plain command's would be (dicts, ints, bools, pairs)
    assert answers == [{"a": "1", "b": "2"}, "text", 1, 1, True, 1, [("m", 3.0)]]


@standalone_redis  # PipelinedRedis is a single Redis: a cluster bypasses it
async def test_a_command_alone_is_sent_alone(client: _Counted) -> None:
    before = (client.pipelines, client.alone)
    assert await client.get(f"pipelined:{uuid.uuid4().hex}") is None
    assert (client.pipelines, client.alone) == (before[0], before[1] + 1)


@standalone_redis  # PipelinedRedis is a single Redis: a cluster bypasses it
async def test_an_error_answer_fails_only_its_own_command(client: _Counted) -> None:
    key = f"pipelined:{uuid.uuid4().hex}"
    await client.set(f"{key}:text", "not a number")
    results = await asyncio.gather(
        client.incr(f"{key}:text"),
        client.incr(f"{key}:n"),
        client.set(f"{key}:x", "1"),
        return_exceptions=True,
    )
    assert isinstance(results[0], ResponseError), results
    assert results[1:] == [1, True]
    with pytest.raises(ResponseError):  # alone too: the error is its caller's
        await client.incr(f"{key}:text")


@standalone_redis  # PipelinedRedis is a single Redis: a cluster bypasses it
async def test_scripts_load_themselves_when_redis_forgot_them(
    client: _Counted, redis: Redis
) -> None:
    """redis-py's scripts go as EVALSHA; a NOSCRIPT answer inside a pipeline
    must reach each script call so that it loads the script and runs once."""
    key = f"pipelined:{uuid.uuid4().hex}"
    add = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    await redis.script_flush()
    answers = await asyncio.gather(*(add([key], [n]) for n in (1, 2, 3)), client.get(key))
    assert max(answers[:3]) == 6
    assert int(await redis.get(key) or 0) == 6, "each call ran exactly once"


@standalone_redis  # PipelinedRedis is a single Redis: a cluster bypasses it
async def test_a_blocking_command_never_holds_up_the_others(client: _Counted) -> None:
    key = f"pipelined:{uuid.uuid4().hex}"
    blocked = asyncio.ensure_future(client.bzpopmin(f"{key}:empty", 2))
    read = asyncio.ensure_future(client.get(key))
    done, _ = await asyncio.wait({blocked, read}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {read}, "a GET waited for a blocking pop"
    await client.zadd(f"{key}:empty", {"m": 1})
    assert await asyncio.wait_for(blocked, 2) == (f"{key}:empty", "m", 1.0)


@standalone_redis  # PipelinedRedis is a single Redis: a cluster bypasses it
async def test_commands_named_with_their_subcommand_keep_their_connection(
    client: _Counted,
) -> None:
    """redis-py sends CLIENT SETNAME as one "CLIENT SETNAME" argument: it must
    not share a pipeline (a CLIENT REPLY OFF there would silence the others)."""
    before = (client.pipelines, client.alone)
    await asyncio.gather(client.client_setname("pipelined-test"), client.get("pipelined:x"))
    assert (client.pipelines, client.alone) == (before[0], before[1] + 1), "only the GET batched"


@standalone_redis  # PipelinedRedis is a single Redis: a cluster bypasses it
async def test_a_pipeline_cut_by_a_lost_connection_is_not_sent_again(services: Services) -> None:
    """The worker's connection has no redis-py retries: resending a pipeline
    after a lost connection would run commands already answered a second time."""
    target = parse_url(services.redis_url)  # TCP, or the embedded server's socket
    connections = 0

    async def open_upstream() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if "path" in target:
            return await asyncio.open_unix_connection(target["path"])
        return await asyncio.open_connection(target["host"], target["port"])

    async def cut_first_connection_after_one_answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        upstream_reader, upstream_writer = await open_upstream()

        async def up() -> None:
            while data := await reader.read(65536):
                upstream_writer.write(data)

        async def down() -> None:
            while data := await upstream_reader.read(65536):
                if first and b"answered" in data:
                    writer.write(data[: data.index(b"answered") + len(b"answered") + 2])
                    await writer.drain()
                    writer.transport.abort()
                    upstream_writer.close()
                    return
                writer.write(data)

        with contextlib.suppress(OSError):
            await asyncio.gather(up(), down())

    proxy = await asyncio.start_server(cut_first_connection_after_one_answer, "127.0.0.1", 0)
    port, db = proxy.sockets[0].getsockname()[1], target.get("db", 0)
    proxied = f"redis://127.0.0.1:{port}/{db}"
    client = worker_connection(proxied)
    key = f"pipelined:{uuid.uuid4().hex}"
    count = client.register_script("redis.call('INCR', KEYS[1]); return 'answered'")
    await client.script_load(count.script)
    results = await asyncio.gather(count([key]), client.get(key), return_exceptions=True)
    assert isinstance(results[1], RedisConnectionError), results
    assert await client.get(key) == "1", "the script ran once"
    await client.delete(key)
    await client.aclose()
    proxy.close()


@standalone_redis  # PipelinedRedis is a single Redis: a cluster bypasses it
async def test_transactions_stay_transactions(client: _Counted) -> None:
    key = f"pipelined:{uuid.uuid4().hex}"
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(key).incr(key)
        assert await pipe.execute() == [1, 2]


async def test_a_bullmq_worker_on_the_pipelined_connection_runs_every_job(
    services: Services,
) -> None:
    prefix = "{pipelined-" + uuid.uuid4().hex[:8] + "}"
    on = queue_connection(services.redis_url, services.redis_cluster)
    queue = Queue("jobs", {"connection": on, "prefix": prefix})
    await add_jobs(queue, [{"name": "n", "data": {"i": i}} for i in range(200)])
    seen: list[int] = []
    done = asyncio.Event()

    async def process(job: Any, _token: str) -> int:
        seen.append(job.data["i"])
        if len(seen) == 200:
            done.set()
        return int(job.data["i"]) * 2

    connection = worker_connection(services.redis_url, cluster=services.redis_cluster)
    worker = Worker(
        "jobs", process, {"connection": connection, "prefix": prefix, "concurrency": 16}
    )
    try:
        await asyncio.wait_for(done.wait(), 30)
        await asyncio.sleep(0.2)
        counts = await queue.getJobCounts("completed", "active", "waiting", "failed")
    finally:
        await worker.close()
        await queue.obliterate(force=True)
        await queue.close()
    assert sorted(seen) == list(range(200)), "every job once"
    assert counts == {"completed": 200, "active": 0, "waiting": 0, "failed": 0}


class _CountedWorker(FetchingWorker):
    asked = 0

    async def moveToActive(self, token: str) -> Any:  # noqa: N802 - bullmq's name
        self.asked += 1
        return await super().moveToActive(token)


class _Jobs:
    """A queue of its own, and workers on it."""

    def __init__(self, redis_url: str, cluster: bool) -> None:
        self.redis_url, self.prefix = redis_url, "{fetching-" + uuid.uuid4().hex[:8] + "}"
        self.cluster = cluster
        on = queue_connection(redis_url, cluster)
        self.queue = Queue("jobs", {"connection": on, "prefix": self.prefix})

    async def add(self, count: int) -> None:
        await add_jobs(self.queue, [{"name": "n", "data": {"i": i}} for i in range(count)])

    def worker(self, process: Any, concurrency: int) -> _CountedWorker:
        connection = worker_connection(self.redis_url, cluster=self.cluster)
        options = {"connection": connection, "prefix": self.prefix, "concurrency": concurrency}
        return _CountedWorker("jobs", process, options)


@pytest.fixture
async def jobs(services: Services) -> AsyncIterator[_Jobs]:
    made = _Jobs(services.redis_url, services.redis_cluster)
    yield made
    await made.queue.obliterate(force=True)
    await made.queue.close()


async def test_a_fetching_worker_runs_every_job_once_mostly_taken_while_completing(
    jobs: _Jobs,
) -> None:
    await jobs.add(300)
    seen: list[int] = []
    done = asyncio.Event()

    async def process(job: Any, _token: str) -> int:
        seen.append(job.data["i"])
        if job.data["i"] % 50 == 7:
            raise ValueError("this job fails")
        if len(seen) == 300:
            done.set()
        return int(job.data["i"])

    worker = jobs.worker(process, concurrency=8)
    try:
        await asyncio.wait_for(done.wait(), 30)
        await asyncio.sleep(0.2)
        counts = await jobs.queue.getJobCounts("completed", "failed", "active", "waiting")
    finally:
        await worker.close()
    assert sorted(seen) == list(range(300)), "every job once"
    assert counts == {"completed": 294, "failed": 6, "active": 0, "waiting": 0}
    # 8 slots ask at the start and after each failure or empty answer; the
    # other jobs come with a completion
    assert worker.asked < 300 / 4, worker.asked


# On a cluster connection (not pipelined) the first fetches return one by one,
# and bullmq's run loop stops on close with some still in flight: those jobs
# stay active until the stalled check re-queues them (docs/deploying.md).
@standalone_redis
async def test_a_closing_worker_takes_no_job_it_will_not_run(jobs: _Jobs) -> None:
    await jobs.add(100)
    seen: list[int] = []
    started = asyncio.Event()

    async def process(job: Any, _token: str) -> None:
        seen.append(job.data["i"])
        started.set()
        await asyncio.sleep(0.05)

    worker = jobs.worker(process, concurrency=4)
    await asyncio.wait_for(started.wait(), 10)
    await worker.close()
    counts = await jobs.queue.getJobCounts("completed", "active", "waiting")
    assert counts["active"] == 0, "a job taken while closing would wait for a stalled check"
    assert counts["completed"] == len(seen) < 100
    assert counts["completed"] + counts["waiting"] == 100


@pytest.mark.parametrize("stop", ["close", "pause"])
async def test_a_job_taken_while_the_worker_stops_runs_before_it_has_stopped(
    jobs: _Jobs, stop: str
) -> None:
    """close() or pause() asked while a completion that takes the next job is
    on its way: the taken job runs before close() or pause() returns."""
    await jobs.add(20)
    started: list[int] = []
    finished: list[int] = []
    stopping: list[asyncio.Future[None]] = []
    asked = asyncio.Event()

    async def process(job: Any, _token: str) -> None:
        started.append(job.data["i"])
        if len(started) == 1:  # asked just as this job's completion goes out

            def ask() -> None:
                stopping.append(asyncio.ensure_future(getattr(worker, stop)()))
                asked.set()

            asyncio.get_running_loop().call_soon(ask)
        else:
            await asyncio.sleep(0.2)
        finished.append(job.data["i"])

    worker = jobs.worker(process, concurrency=1)
    try:
        await asyncio.wait_for(asked.wait(), 10)
        await asyncio.wait_for(stopping[0], 10)
        assert started == finished, "stopped with a job still running"
        counts = await jobs.queue.getJobCounts("active", "completed", "waiting")
        assert counts == {"active": 0, "completed": len(finished), "waiting": 20 - len(finished)}
    finally:
        await worker.close(force=True)
