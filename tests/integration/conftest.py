"""Fixtures of the integration tests beyond the session's (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_cluster import RedisClusterProcesses


@pytest.fixture
def own_cluster() -> Iterator[RedisClusterProcesses]:
    """A Redis Cluster of the test's own (3 masters, 3 replicas), to break."""
    cluster = RedisClusterProcesses()
    cluster.start()
    yield cluster
    cluster.stop()
