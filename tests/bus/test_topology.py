"""Streams and buckets kept on several nats-servers: the replica count the server is given is
what every stream, bucket and consumer gets, an existing stream is brought to it, and a count
nats-server cannot keep is a clear error, not a traceback and not a silent retry forever."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from drover.bus import subjects, topology
from drover.bus.embedded import EmbeddedNats
from drover.bus.errors import ReplicasRefused
from tests.busauth import superuser_client
from tests.chaos.cluster import nats_cluster

DROVER = str(Path(sys.executable).parent / "drover")
EXAMPLE = Path(__file__).parents[2] / "examples" / "config"
STREAMS = [config.name or "" for config in topology.stream_configs()] + [
    subjects.KV_STREAM_PREFIX + bucket.bucket for bucket in topology.bucket_configs()
]


async def test_streams_made_with_one_replica_get_three_on_a_cluster_and_consumers_follow(
    tmp_path: Path,
) -> None:
    async with nats_cluster(tmp_path) as cluster, cluster.client() as nc:
        js = nc.jetstream(timeout=10)
        await topology.ensure(js)
        await topology.ensure_host(js, "h1")

        await topology.ensure(js, replicas=3)
        await topology.ensure(js, replicas=3)  # and again: nothing left to change

        replicas = {name: (await js.stream_info(name)).config.num_replicas for name in STREAMS}
        assert replicas == dict.fromkeys(STREAMS, 3)
        actions = subjects.agent_actions_consumer("h1")
        consumer = await js.consumer_info(subjects.ACTIONS_STREAM, actions)
        assert not consumer.config.num_replicas  # none of its own: its stream's
        assert consumer.cluster is not None and consumer.cluster.leader


async def test_replicas_on_a_single_nats_server_are_refused_and_say_which_option(
    nats_server: EmbeddedNats,
) -> None:
    nc = await superuser_client(nats_server)
    try:
        with pytest.raises(ReplicasRefused) as refused:
            await topology.ensure(nc.jetstream(), replicas=3)
    finally:
        await nc.close()

    assert refused.value.permanent
    assert str(refused.value) == (
        "--bus-replicas 3: nats-server refused 3 replicas of stream DROVER_EVENTS (replicas > 1 "
        "not supported in non-clustered mode); it is not clustered: run --bus-replicas 1, or a "
        "cluster of 3 nats-servers"
    )


async def test_the_server_command_with_more_replicas_than_nats_keeps_ends_with_one_error_line(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    assert nats_server.security is not None
    process = await asyncio.create_subprocess_exec(
        DROVER,
        "server",
        "--config",
        str(EXAMPLE),
        "--database",
        f"sqlite+aiosqlite:///{tmp_path / 'drover.db'}",
        "--listen",
        "127.0.0.1:0",
        "--nats",
        nats_server.url,
        "--nats-ca",
        str(nats_server.security.certificate.ca_file),
        "--bus-authority",
        str(nats_server.security.authority.directory),
        "--bus-replicas",
        "3",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    errors = stderr.decode()

    assert process.returncode == 2
    assert "Traceback" not in errors
    assert errors.splitlines()[-1] == (
        "error: --bus-replicas 3: nats-server refused 3 replicas of stream DROVER_EVENTS "
        "(replicas > 1 not supported in non-clustered mode); it is not clustered: run "
        f"--bus-replicas 1, or a cluster of 3 nats-servers (NATS at {nats_server.url})"
    )


async def test_more_than_500_hosts_get_their_consumers_on_a_bus_made_before_the_cap(
    nats_server: EmbeddedNats,
) -> None:
    """nats-server (2.15) caps a stream at 1,000 consumers unless the stream says otherwise:
    each host has two on the actions stream and one on the desired-state bucket. Streams made
    without a cap of their own (by an older drover) are given theirs."""
    nc = await superuser_client(nats_server)
    try:
        js = nc.jetstream(timeout=10)
        await topology.ensure(js)
        for name in (subjects.ACTIONS_STREAM, subjects.KV_STREAM_PREFIX + "drover-desired"):
            config = (await js.stream_info(name)).config
            await js.update_stream(replace(config, max_consumers=0))  # as before: the default
        await topology.ensure(js)

        hosts = [f"h{n:03d}" for n in range(520)]
        gate = asyncio.Semaphore(32)

        async def enroll(host: str) -> None:
            async with gate:
                await topology.ensure_host(js, host)

        await asyncio.gather(*(enroll(host) for host in hosts))
        actions = await js.stream_info(subjects.ACTIONS_STREAM)
        desired = await js.stream_info(subjects.KV_STREAM_PREFIX + "drover-desired")
        assert actions.state.consumer_count == 2 * len(hosts)
        assert desired.state.consumer_count == len(hosts)
        assert (actions.config.max_consumers or 0) >= 2 * topology.MAX_HOSTS
        assert (desired.config.max_consumers or 0) >= topology.MAX_HOSTS
    finally:
        await nc.close()
