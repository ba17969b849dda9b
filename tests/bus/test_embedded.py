from pathlib import Path

import nats

from drover.bus import subjects, topology
from drover.bus.embedded import EmbeddedNats


async def test_the_embedded_server_starts_on_a_free_port_and_stops(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "js")
    await server.start()
    assert server.port > 0
    nc = await nats.connect(server.url)
    await nc.close()
    pid = server.pid()
    await server.stop()
    assert pid is not None
    assert server.process is not None and server.process.returncode is not None


async def test_topology_is_idempotent(nats_server: EmbeddedNats) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await topology.ensure(js)
        await topology.ensure(js)
        names = {s.config.name for s in await js.streams_info()}
        assert {subjects.ACTIONS_STREAM, subjects.RESULTS_STREAM, subjects.EVENTS_STREAM} <= names
        assert await js.key_value(subjects.STATE_BUCKET)
    finally:
        await nc.close()
