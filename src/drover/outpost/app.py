"""`drover outpost`: the bus at a remote site, for the agents there.

It runs nats-server as a leaf node of the hub's (the nats-server the drover servers use),
with no JetStream of its own: every stream and bucket stays on the hub, and the outpost
carries its agents' traffic over one connection — one TLS link per site instead of one per
host, and one reconnect when the link comes back instead of a storm of them. It authenticates
its agents itself, with the authority's public part from its bundle
(bus/trust/outposts.py), and holds each to its own subjects as the hub would.

When the link drops, the agents stay connected to the outpost and see the hub's JetStream as
unreachable: they go on enforcing the desired state they know and keep what they must report
— results in their fsynced ledger, state changes in their spool, the latest state of every
service — until the link is back, then send it; actions they already took run, and those that
reach them past their deadline are reported `expired`, not run (docs/operations.md,
"Outposts"). The outpost keeps nothing itself. It asks the hub's JetStream through the link
every PROBE_EVERY seconds, and logs each change of the answer (link up, link down).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import nats.errors

from drover.bus import subjects
from drover.bus.connection import Bus, BusSettings
from drover.bus.embedded import BusSecurity, EmbeddedNats, LeafRemote
from drover.bus.trust.outposts import OutpostBundle
from drover.bus.trust.pki import ServerCertificate
from drover.ops.cancels import checkpoint
from drover.ops.counters import Counters
from drover.ops.loops import forever

log = logging.getLogger(__name__)

_HUB_INFO = f"{subjects.js_api(subjects.JS_DOMAIN)}.INFO"
PROBE_EVERY = 2.0  # seconds between two probes of the link
PROBE_TIMEOUT = 3.0


LINK_PING_INTERVAL = 10.0  # seconds


@dataclass(frozen=True)
class OutpostSettings:
    bundle: Path
    hub: tuple[str, ...]  # the hub's leaf node URLs, tls://HOST:7422
    data_dir: Path
    certificate: ServerCertificate  # what its agents see, and the CA it is checked with
    listen_host: str = "0.0.0.0"
    listen_port: int = 4222


class Outpost:
    def __init__(self, settings: OutpostSettings) -> None:
        self.settings = settings
        self.bundle = OutpostBundle.load(settings.bundle)
        self.nats: EmbeddedNats | None = None
        self.counters = Counters()
        self.ready = asyncio.Event()
        self.link_up = asyncio.Event()  # the hub's JetStream answered the last probe
        self.link_down = asyncio.Event()  # it did not
        self.link_changes = 0

    def remotes(self) -> tuple[LeafRemote, ...]:
        bundle = self.bundle
        urls = ",".join(self.settings.hub)
        return (
            LeafRemote(urls, bundle.account, bundle.drover_credentials, bundle.hub_ca),
            # The system account too: account JWTs the hub is given (a host's revocation)
            # reach this nats-server's resolver, so it refuses revoked hosts as the hub does.
            LeafRemote(urls, bundle.system_account, bundle.system_credentials, bundle.hub_ca),
        )

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        nats = EmbeddedNats(
            settings.data_dir / "nats",
            host=settings.listen_host,
            port=settings.listen_port,
            security=BusSecurity(self.bundle, settings.certificate),
            leaf_remotes=self.remotes(),
            jetstream=False,
            server_name=f"outpost-{self.bundle.name}",
            # A link that goes silent is found dead within about half a minute, not the
            # default's four: its agents' calls then fail at once instead of timing out.
            ping_interval=LINK_PING_INTERVAL,
        )
        await nats.start()
        self.nats = nats
        log.info(
            "outpost %s: nats-server (pid %s) for its agents on %s, leaf node of %s",
            self.bundle.name,
            nats.pid(),
            nats.url,
            ", ".join(settings.hub),
        )
        local = "127.0.0.1" if settings.listen_host in ("0.0.0.0", "::", "") else nats.host
        probe = Bus(
            BusSettings(
                url=f"tls://{local}:{nats.port}",
                name=f"outpost-{self.bundle.name}",
                identity=self.bundle.probe_identity(),
                tls_ca=settings.certificate.ca_file,
                inbox_prefix=subjects.outpost_inbox(self.bundle.name),
            ),
            self.counters,
        )
        try:
            await probe.connect()
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                probing = tg.create_task(
                    forever("outpost.probe", lambda: self._probe(probe), self.counters)
                )
                await stop.wait()
                probing.cancel()
        finally:
            await probe.close()
            await nats.stop()

    async def _probe(self, probe: Bus) -> None:
        """Ask the hub's JetStream, through the link, every PROBE_EVERY seconds; log each
        change of its answer."""
        while True:
            try:
                await probe.nc.request(_HUB_INFO, b"", timeout=PROBE_TIMEOUT)
                up = True
            except (nats.errors.Error, TimeoutError):
                up = False
            self._saw(up)
            checkpoint()
            await asyncio.sleep(PROBE_EVERY)

    def _saw(self, up: bool) -> None:
        if up == self.link_up.is_set():
            return
        self.link_changes += 1
        if up:
            self.link_down.clear()
            self.link_up.set()
            log.info("outpost %s: the hub answers; link up", self.bundle.name)
        else:
            self.link_up.clear()
            self.link_down.set()
            log.warning(
                "outpost %s: the hub does not answer; link down (agents here keep what they "
                "must report until it is back)",
                self.bundle.name,
            )
