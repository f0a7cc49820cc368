"""`keel doctor` on Redis Cluster: KEEL_REDIS_CLUSTER must say what Redis is,
and a cluster must serve every slot with a replica per master
(entrypoints/doctor/redis.py). The shape's rules are unit-tested here; a real
3 + 3 cluster of the test's own (slow: `pytest -m slow`) checks the reading."""

from __future__ import annotations

import pytest

from entrypoints.devstack.services import Services
from entrypoints.doctor.redis import mode_check, redis_checks
from entrypoints.doctor.report import Status
from tests.redis_cluster import CLUSTER, RedisClusterProcesses

HEALTHY = {"cluster_state": "ok", "cluster_size": "3", "cluster_known_nodes": "6"}


@pytest.mark.parametrize(
    ("cluster", "mode", "info", "status"),
    [
        (False, "standalone", {}, Status.OK),
        (False, "cluster", HEALTHY, Status.FAIL),
        (True, "cluster", HEALTHY, Status.OK),
        (True, "cluster", {**HEALTHY, "cluster_known_nodes": "4"}, Status.WARN),
        (True, "cluster", {**HEALTHY, "cluster_state": "fail"}, Status.FAIL),
        (True, "standalone", {}, Status.FAIL),
    ],
    ids=["one", "unsaid-cluster", "cluster", "master-without-replica", "slots-down", "no-cluster"],
)
def test_the_mode_check(cluster: bool, mode: str, info: dict[str, str], status: Status) -> None:
    assert mode_check(cluster, mode, info).status is status


@pytest.mark.slow
async def test_a_real_cluster_is_read_as_one(own_cluster: RedisClusterProcesses) -> None:
    said = {check.name: check for check in await redis_checks(own_cluster.url, cluster=True)}
    assert said["redis.mode"].status is Status.OK, said["redis.mode"].message
    assert "3 masters and 3 replicas" in said["redis.mode"].message
    assert said["redis.version"].status is Status.OK
    unsaid = {check.name: check for check in await redis_checks(own_cluster.url, cluster=False)}
    assert unsaid["redis.mode"].status is Status.FAIL


@pytest.mark.skipif(CLUSTER, reason="needs one Redis server")
async def test_a_single_redis_taken_for_a_cluster_fails(services: Services) -> None:
    said = {check.name: check for check in await redis_checks(services.redis_url, cluster=True)}
    assert said["redis.reachable"].status is Status.FAIL
