"""Generic performance machinery: round trips shared between callers, and the
worker's job fetched in the call that completes the last one.

Nothing here knows Keel: no domain, application, entrypoint or other adapter
is imported (an import-linter contract in pyproject.toml keeps it so), only
asyncio, redis-py and bullmq. Each piece answers exactly what the plain path
would answer (one call, one command, one script call at a time); the tests
named below keep it so, and a change to a piece comes with theirs.

coalescing.py · Coalescer
    Calls made at the same moment go out as one batch: alone at the loop's
    next turn when nothing is in flight, else together after the batch in
    flight. Every caller gets its own answer or error, also when the batch
    is cancelled. No library does this for redis-py or asyncpg (both leave
    building a pipeline or an `executemany` to the caller).
    Pinned by tests/unit/test_coalescing.py.

pipelining.py · BatchedCommands, PipelinedRedis
    Redis commands sent together as one pipeline: BatchedCommands for Keel's
    own adapters (the cache's reads, the event bus's publishes, scripts as
    EVALSHA loaded on NOSCRIPT), PipelinedRedis a redis-py client that does
    the same for every command of code that is not Keel's (bullmq's worker),
    what ioredis calls auto-pipelining; redis-py has no such thing.
    Relies on redis-py: every command method of `Redis` going through
    `execute_command(*args, **options)`; a non-transaction pipeline parsing
    each answer with the options it was queued with (so that it reads as the
    plain command's: dicts, bools, score pairs) and returning error answers
    in place with `execute(raise_on_error=False)`; `single_connection_client`;
    subcommands named in one argument ("CLIENT SETNAME"); `from_url` building
    `cls`; `AsyncScript.sha` and `.script`. pyproject.toml keeps redis-py
    below its next major version.
    Pinned by tests/integration/test_pipelined_redis.py (answers parsed as a
    plain command's, errors their own command's, scripts that load
    themselves, blocking and connection-state commands alone, a cut pipeline
    not sent again, transactions untouched, a bullmq worker on it),
    tests/integration/test_batched_reads.py (each reader its own values) and
    tests/integration/test_batched_read_failures.py (failing, cancelled and
    interleaved batches of cache reads).

batch_or_each.py · BatchOrEach
    A Coalescer's send for changes that have a batch form (one statement for
    many) and a single one: the first change of each thing as one batch, a
    thing's later changes alone after it, and every change alone again when
    the batch is refused, so that an error is only its own change's. No
    library: the batch statements are Keel's own (PgTaskStates' claims,
    heartbeats and finishes). Relies on nothing upstream.
    Pinned by tests/unit/test_batch_or_each.py (answers equal to making each
    change alone, in order) and tests/security/test_worker_batches.py (the
    real batch functions, several tenants in one call).

fetching.py · FetchingWorker
    bullmq's Worker, taking the next job in the script call that completes
    one (moveToFinished with fetch-next), as bullmq's Node worker does; the
    Python worker completes, then asks for the next job: one more script call
    per job. A job taken while the worker closes or pauses runs in the slot
    that took it. bullmq-python has no option for it. Relies on bullmq's
    Worker internals: `backend.moveToCompleted(..., fetch_next=)` and the
    shape of its answer, `nextJobFromJobData`, the run loop running the job
    `processJob` returns, `closing`, `paused`, `clientName`; pyproject.toml
    keeps bullmq below 4.
    Pinned by tests/integration/test_pipelined_redis.py (every job runs once,
    failures stay failures, closing and stopping leave no job taken and not
    run) and tests/integration/test_bullmq_node.py (Node's bullmq reads the
    queue as its own).

Keel's one other fast path, the cached read in front of Litestar
(entrypoints/http/hot_reads.py), knows Keel's routes and tokens, so it lives
with the HTTP entry point; KEEL_HOT_READS=false turns it off.
"""
