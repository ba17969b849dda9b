"""The Bus's connection: several URLs, any one that answers will do; and a client that nats-py
closed for good is replaced by a new connection, without the process being restarted."""

from __future__ import annotations

from dataclasses import replace

from drover.bus import subjects, topology
from drover.bus.connection import Bus, BusSettings, split_urls
from drover.bus.embedded import EmbeddedNats, free_port
from drover.ops.counters import Counters
from tests.busauth import bus_settings
from tests.conftest import eventually


def test_urls_separated_by_commas_are_the_servers_of_one_client() -> None:
    settings = BusSettings(url="tls://a:4222, tls://b:4222,,tls://c:4222")
    assert settings.servers == ["tls://a:4222", "tls://b:4222", "tls://c:4222"]
    assert split_urls("nats://127.0.0.1:4222") == ["nats://127.0.0.1:4222"]


async def test_a_bus_given_a_node_that_is_down_connects_to_one_that_answers(
    nats_server: EmbeddedNats,
) -> None:
    down = f"tls://127.0.0.1:{free_port()}"
    settings = bus_settings(nats_server, "several", reconnect_base=0.05)
    bus = Bus(replace(settings, url=f"{down},{nats_server.url}"), Counters())
    await bus.connect()
    try:
        assert bus.is_connected
        assert bus.nc.connected_url is not None
        assert bus.nc.connected_url.port == nats_server.port
    finally:
        await bus.close()


async def test_a_client_nats_py_closed_is_replaced_by_a_new_connection(
    nats_server: EmbeddedNats,
) -> None:
    counters = Counters()
    bus = Bus(bus_settings(nats_server, "reopens"), counters)
    await bus.connect()
    try:
        await topology.ensure(bus.js)
        closed, generation = bus.nc, bus.generation
        # What nats-py does when it gives up (no server left to try; an error the server
        # sends while connected): it closes the client, and would stay closed.
        await closed.close()

        await eventually(lambda: bus.is_connected and bus.nc is not closed, 15)
        assert bus.generation == generation + 1  # the loops make their subscriptions anew
        assert counters.get("bus.reopens") == 1
        await bus.put(subjects.STATE_BUCKET, "reopened", b"yes")  # and the new one works
        entry = await (await bus.kv(subjects.STATE_BUCKET)).get("reopened")
        assert entry.value == b"yes"
    finally:
        await bus.close()
    assert not bus.is_open  # a close of our own is not undone
