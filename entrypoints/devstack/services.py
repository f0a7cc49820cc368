"""Real Postgres and Redis for the tests and the benchmarks (bench/), found in this order:

1. KEEL_TEST_DATABASE_URL / KEEL_TEST_REDIS_URL (a superuser or schema-owner
   URL, e.g. this machine's postgresql://postgres@127.0.0.1:5432/postgres);
2. testcontainers, when a Docker engine answers;
3. the embedded servers `keel dev` uses, in a temporary data directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from entrypoints.devstack.postgres import EmbeddedPostgres
from entrypoints.devstack.redis import EmbeddedRedis


@dataclass(frozen=True)
class Services:
    postgres_url: str
    redis_url: str
    origin: str
    redis_cluster: bool = False  # redis_url is a seed node of a Redis Cluster


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:  # no SDK, no socket, no engine: all mean "no Docker"
        return False
    return True


@contextmanager
def _containers() -> Iterator[tuple[str, str]]:
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    with PostgresContainer("postgres:16", driver=None) as pg, RedisContainer("redis:7") as redis:
        host, port = redis.get_container_host_ip(), redis.get_exposed_port(6379)
        yield pg.get_connection_url(), f"redis://{host}:{port}/0"


@contextmanager
def _embedded(stack: ExitStack, need_pg: bool, need_redis: bool) -> Iterator[tuple[str, str]]:
    data_dir = Path(tempfile.mkdtemp(prefix="keel-test-"))
    stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
    pg_url = redis_url = ""
    if need_pg:
        postgres = EmbeddedPostgres(data_dir, fast=True)
        stack.callback(postgres.remove_data)
        stack.callback(postgres.stop)
        pg_url = postgres.start()
    if need_redis:
        redis = EmbeddedRedis(data_dir, persist=False)
        stack.callback(redis.stop)
        redis_url = redis.start()
    yield pg_url, redis_url


@contextmanager
def test_services(cluster_url: str | None = None) -> Iterator[Services]:  # noqa: PT028 - not a test
    """With `cluster_url`, that Redis Cluster's seed is the Redis."""
    pg_url = os.environ.get("KEEL_TEST_DATABASE_URL", "")
    redis_url = cluster_url or os.environ.get("KEEL_TEST_REDIS_URL", "")
    with ExitStack() as stack:
        origin = "KEEL_TEST_* URLs"
        if not (pg_url and redis_url):
            if _docker_answers():
                origin, started = "testcontainers", stack.enter_context(_containers())
            else:
                origin = "embedded servers"
                started = stack.enter_context(_embedded(stack, not pg_url, not redis_url))
            pg_url, redis_url = pg_url or started[0], redis_url or started[1]
        yield Services(pg_url, redis_url, origin, redis_cluster=cluster_url is not None)
