"""A real Redis Cluster for the tests: 3 masters and 3 replicas, each a
`redis-server` child on 127.0.0.1, in a temporary directory, gone after.

Ports are below 40000 and their cluster bus ports (port + 10000) below
50000, all found free first. `cluster-node-timeout` is short (1 s), so a
replica takes over within seconds of its master's death (the failover
test kills one). Nothing is persisted (`--save "" --appendonly no`).

With KEEL_TEST_REDIS_CLUSTER=1 the test session's Redis is such a cluster
(tests/conftest.py); tests that need one plain Redis server carry
`standalone_redis`.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from entrypoints.devstack.process import spawn, stop

CLUSTER = os.environ.get("KEEL_TEST_REDIS_CLUSTER", "") == "1"
standalone_redis = pytest.mark.skipif(
    CLUSTER, reason="needs one Redis server (CLIENT PAUSE/KILL, a single connection's pipeline)"
)

NODES = 6
NODE_TIMEOUT_MS = 1000
BUS_OFFSET = 10_000


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """`count` ports in 20000-39999 whose bus ports are free too."""
    found: list[int] = []
    while len(found) < count:
        port = random.randrange(20_000, 40_000)
        if port not in found and _free(port) and _free(port + BUS_OFFSET):
            found.append(port)
    return found


class ClusterStartError(RuntimeError):
    pass


class RedisClusterProcesses:
    """Start with `start()` (returns a seed node's URL); `stop()` ends every node."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="keel-cluster-"))
        self.ports: list[int] = []
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout_s: float = 60) -> str:
        try:
            self.ports = _free_ports(NODES)
            for port in self.ports:
                self._start_node(port)
            for port in self.ports:
                self._wait_until(lambda p=port: self._answers(p), timeout_s, f"node {port}")
            self._create()
            self._wait_until(self.ok, timeout_s, "cluster_state:ok on every node")
            self._wait_until(self._replicas_synced, timeout_s, "replica in sync")
        except BaseException:
            self.stop()
            raise
        return self.url

    def _start_node(self, port: int) -> None:
        directory = self.base / str(port)
        directory.mkdir()
        args = [
            shutil.which("redis-server") or "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", directory),
            *("--cluster-enabled", "yes", "--cluster-config-file", directory / "nodes.conf"),
            *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
            # a replica takes over however long it was apart from its master
            *("--cluster-replica-validity-factor", "0"),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ]
        self.processes[port] = spawn(args, death_signal=signal.SIGTERM, log=directory / "log")

    def _create(self) -> None:
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        done = subprocess.run(
            [
                *(shutil.which("redis-cli") or "redis-cli", "--cluster", "create", *nodes),
                *("--cluster-replicas", "1", "--cluster-yes"),
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise ClusterStartError(f"redis-cli --cluster create failed: {done.stdout!r}")

    def _cli(self, port: int, *command: str) -> str:
        done = subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "-p", str(port), *command],
            capture_output=True,
            timeout=5,
            check=False,
        )
        return done.stdout.decode()

    def _answers(self, port: int) -> bool:
        return self._cli(port, "PING").strip() == "PONG"

    def _replicas_synced(self) -> bool:
        """Every replica's link to its master is up (it can take over)."""
        roles = [self._cli(port, "INFO", "replication") for port in self.ports]
        replicas = [role for role in roles if "role:slave" in role]
        return len(replicas) == NODES // 2 and all(
            "master_link_status:up" in role for role in replicas
        )

    def alive(self) -> list[int]:
        return [port for port, process in self.processes.items() if process.poll() is None]

    def ok(self) -> bool:
        """Every live node says cluster_state:ok."""
        return all(
            "cluster_state:ok" in self._cli(port, "CLUSTER", "INFO") for port in self.alive()
        )

    def master_of(self, key: str) -> int:
        """The port of the master that owns `key`'s slot now."""
        slot = int(self._cli(self.alive()[0], "CLUSTER", "KEYSLOT", key))
        for line in self._cli(self.alive()[0], "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for ranges in fields[8:]:
                low, _, high = ranges.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split("@")[0].rpartition(":")[2])
        raise ClusterStartError(f"no master owns slot {slot}")

    def crossslot_errors(self) -> int:
        """CROSSSLOT refusals the live nodes have answered since they started."""
        total = 0
        for port in self.alive():
            for line in self._cli(port, "INFO", "errorstats").splitlines():
                if line.startswith("errorstat_CROSSSLOT:count="):
                    total += int(line.partition("=")[2].split(",")[0])
        return total

    def promoted(self, key: str, dead: int) -> bool:
        """Whether a node other than `dead` is the master of `key`'s slot, and the
        cluster says it is ok."""
        try:
            return self.ok() and self.master_of(key) != dead
        except ClusterStartError:  # no master for the slot yet
            return False

    def kill(self, port: int) -> None:
        """SIGKILL one node (its replica takes over after NODE_TIMEOUT_MS)."""
        self.processes[port].kill()
        self.processes[port].wait()

    def _wait_until(self, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise ClusterStartError(f"Redis Cluster: no {what} within {timeout_s:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                stop(process, signal.SIGTERM)
        self.processes.clear()
        shutil.rmtree(self.base, ignore_errors=True)
