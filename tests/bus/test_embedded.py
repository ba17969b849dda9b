import asyncio
import ssl
from pathlib import Path

import nats
import nats.errors

from drover.bus import subjects, topology
from drover.bus.embedded import BusSecurity, Cluster, EmbeddedNats, free_port
from tests.busauth import superuser_client
from tests.conftest import eventually


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
    nc = await superuser_client(nats_server)
    try:
        js = nc.jetstream()
        await topology.ensure(js)
        await topology.ensure(js)
        names = {s.config.name for s in await js.streams_info()}
        assert {subjects.ACTIONS_STREAM, subjects.RESULTS_STREAM, subjects.EVENTS_STREAM} <= names
        assert await js.key_value(subjects.STATE_BUCKET)
    finally:
        await nc.close()


async def test_two_servers_route_over_mutual_tls_and_refuse_a_route_without_a_certificate(
    tmp_path: Path,
) -> None:
    security = BusSecurity.local(tmp_path / "bus")
    port_a, port_b = free_port(), free_port()
    a = EmbeddedNats(
        tmp_path / "a",
        security=security,
        cluster=Cluster("drover", port_a, (f"tls://127.0.0.1:{port_b}",)),
    )
    b = EmbeddedNats(
        tmp_path / "b",
        security=security,
        cluster=Cluster("drover", port_b, (f"tls://127.0.0.1:{port_a}",)),
    )
    await a.start()
    await b.start()
    try:
        await eventually(
            lambda: any("Route connection created" in line for line in a.log_lines), 20
        )
        on_a, on_b = await superuser_client(a), await superuser_client(b)
        try:
            heard = await on_a.subscribe("drover.probe")
            await on_a.flush()

            async def crossed() -> bool:
                await on_b.publish("drover.probe", b"over the route")
                await on_b.flush()
                try:
                    msg = await heard.next_msg(timeout=0.5)
                except nats.errors.TimeoutError:
                    return False
                return msg.data == b"over the route"

            await eventually(crossed, 20)
        finally:
            await on_a.close()
            await on_b.close()
        # The route port wants a certificate of the same CA: a peer without one is cut off
        # right after the TLS handshake; one with it is let on (and waits for its CONNECT).
        cert = security.certificate
        with_cert = ssl.create_default_context(cafile=str(cert.ca_file))
        with_cert.load_cert_chain(str(cert.cert_file), str(cert.key_file))
        assert await _route_peer_kept(port_a, with_cert)
        without = ssl.create_default_context(cafile=str(cert.ca_file))
        assert not await _route_peer_kept(port_a, without)
    finally:
        await a.stop()
        await b.stop()


async def _route_peer_kept(port: int, context: ssl.SSLContext) -> bool:
    """Whether the route port lets on a peer that speaks TLS with `context` (routes speak it
    from the first byte): it then says INFO; a peer it refuses is cut off instead."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
    except (ssl.SSLError, ConnectionError):
        return False
    try:
        return (await asyncio.wait_for(reader.readline(), 5)).startswith(b"INFO ")
    except (ssl.SSLError, ConnectionError):
        return False
    finally:
        writer.close()
