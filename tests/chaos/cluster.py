"""Three clustered nats-servers for the chaos tests, secured as `drover dev` runs one: the same
bus authority and TLS certificate on every node, mutual TLS on the routes, JetStream clustered.

The test drives the nodes as an operator (or a power cut) would: `kill` one with SIGKILL,
`restart` it on its own store directory and ports (so it rejoins as the same server), `stop_all`
and `start_all` for a patch night. `healthy` is the check an operator makes before taking the
next node down in a rolling restart: every stream of drover's has a leader and every replica is
current."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats.errors
from nats.aio.client import Client

from drover.bus.embedded import BusSecurity, Cluster, EmbeddedNats, free_port
from tests.busauth import connect_options
from tests.conftest import eventually

CLUSTER_NAME = "drover"
SIZE = 3
PROBE = "CHAOS_PROBE"
READY_WITHIN = 60.0  # seconds for a new cluster to elect its JetStream leader, on a busy machine


@dataclass
class NatsCluster:
    security: BusSecurity
    nodes: list[EmbeddedNats]

    @property
    def urls(self) -> list[str]:
        """Every node's client URL (known once the cluster has started: ports are fixed then)."""
        return [node.url for node in self.nodes]

    def running(self) -> list[EmbeddedNats]:
        return [node for node in self.nodes if _alive(node)]

    async def start_all(self) -> None:
        """Start every node that is not running, one after the other (each is ready to take
        clients at once; JetStream elects its leaders once a majority is up). Not together: each
        start writes the authority's operator JWT file that the others read."""
        for node in self.nodes:
            if not _alive(node):
                await node.start()

    async def stop_all(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes))

    async def kill(self, index: int) -> None:
        """SIGKILL: no goodbye to its clients or its peers, nothing flushed."""
        node = self.nodes[index]
        assert node.process is not None and _alive(node)
        node.process.send_signal(signal.SIGKILL)
        await node.process.wait()

    async def restart(self, index: int) -> None:
        """Start node `index` again, on the store directory and ports it had (it rejoins as the
        same server: its server name is made of the cluster name and its route port)."""
        node = self.nodes[index]
        await node.stop()
        await node.start()

    async def healthy(self, streams: list[str]) -> bool:
        """Whether every node runs and each of `streams` has a leader and a current replica
        (caught up, and seen lately by the leader) on every other node."""
        if len(self.running()) < len(self.nodes):
            return False
        try:
            async with self.client() as nc:
                js = nc.jetstream(timeout=2)
                for name in streams:
                    cluster = (await js.stream_info(name)).cluster
                    if cluster is None or not cluster.leader:
                        return False
                    current = [p for p in cluster.replicas or [] if p.current and not p.offline]
                    if len(current) < len(self.nodes) - 1:
                        return False
        except (nats.errors.Error, OSError, TimeoutError):
            return False
        return True

    async def jetstream_ready(self) -> bool:
        """Whether JetStream can place a stream on every node: a leader is elected and every
        node has joined it (a stream of the test's own, made and deleted)."""
        try:
            async with self.client() as nc:
                js = nc.jetstream(timeout=2)
                await js.add_stream(name=PROBE, subjects=[PROBE], num_replicas=len(self.nodes))
                await js.delete_stream(PROBE)
        except (nats.errors.Error, OSError, TimeoutError):
            return False
        return True

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[Client]:
        """A superuser client on any running node: for the test's own looks at JetStream."""
        options = connect_options(self.nodes[0])
        options |= {
            "servers": [node.url for node in self.running()] or self.urls,
            "allow_reconnect": False,
            "connect_timeout": 2,
        }
        nc = await nats.connect(**options)
        try:
            yield nc
        finally:
            await nc.close()


def _alive(node: EmbeddedNats) -> bool:
    return node.process is not None and node.process.returncode is None


@contextlib.asynccontextmanager
async def nats_cluster(tmp: Path, size: int = SIZE) -> AsyncIterator[NatsCluster]:
    """`size` nats-servers, clustered over mutual TLS, started and left running; all stopped
    at the end, whatever state the test left them in."""
    security = BusSecurity.local(tmp / "bus")
    route_ports = [free_port() for _ in range(size)]
    nodes = [
        EmbeddedNats(
            tmp / f"nats-{index}",
            security=security,
            cluster=Cluster(
                CLUSTER_NAME,
                port,
                tuple(f"tls://127.0.0.1:{other}" for other in route_ports if other != port),
            ),
        )
        for index, port in enumerate(route_ports)
    ]
    cluster = NatsCluster(security, nodes)
    try:
        await cluster.start_all()
        await eventually(cluster.jetstream_ready, READY_WITHIN, interval=0.2)
        yield cluster
    finally:
        await cluster.stop_all()
