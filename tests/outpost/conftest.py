"""A hub and a remote site: the hub's nats-server (accepting leaf nodes) with the drover server
on it, and an outpost (`drover outpost`'s Outpost) whose link to the hub runs through a proxy
the test can blackhole and heal (tests/chaos/proxy.py): the WAN link of a site."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drover.bus.embedded import BusSecurity, EmbeddedNats
from drover.bus.trust.outposts import make_bundle
from drover.bus.trust.pki import ensure_server_certificate
from drover.outpost.app import Outpost, OutpostSettings
from tests.chaos.proxy import Proxy


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.outpost)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """The hub's nats-server, as the nats_server fixture's, that also takes leaf nodes."""
    security = BusSecurity.local(tmp_path / "bus")
    server = EmbeddedNats(tmp_path / "nats", security=security, leaf_port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class Site:
    """An outpost, its link to the hub (`link`, a proxy) and its stop."""

    outpost: Outpost
    link: Proxy
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        """Where the site's agents connect."""
        assert self.outpost.nats is not None
        return self.outpost.nats.url


@contextlib.asynccontextmanager
async def site_of(hub: EmbeddedNats, tmp: Path, name: str) -> AsyncIterator[Site]:
    """Outpost `name`, its bundle made from the hub's authority as `drover outpost init`
    makes it, serving its agents TLS with a certificate of the hub's CA; up once its link is."""
    assert hub.security is not None and hub.leaf_port
    link = Proxy(hub.host, hub.leaf_port)
    await link.start()
    bundle = make_bundle(
        hub.security.authority, name, tmp / f"outpost-{name}", hub.security.certificate.ca_file
    )
    certificate = ensure_server_certificate(tmp / "bus" / "pki", ["localhost"], ["127.0.0.1"])
    outpost = Outpost(
        OutpostSettings(
            bundle=bundle.directory,
            hub=(f"tls://127.0.0.1:{link.port}",),
            data_dir=tmp / f"site-{name}",
            certificate=certificate,
            listen_host="127.0.0.1",
            listen_port=0,
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(outpost.run(stop), name=f"outpost {name}")
    try:
        await asyncio.wait_for(outpost.ready.wait(), 20)
        await asyncio.wait_for(outpost.link_up.wait(), 20)
        yield Site(outpost, link, stop, task)
    finally:
        link.heal()
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 20)
        await link.close()
