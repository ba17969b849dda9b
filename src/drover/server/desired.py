"""Publishes each host's desired state (what it should run, from the active config).

Written only when it changes, for every host the config names or the fleet has seen; everything
is written again after a reconnect, since the bus may have lost its data (invariant 2).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import nats.js.errors

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.errors import MalformedMessage
from drover.bus.messages import DesiredService, DesiredState, SshTarget, decode, encode
from drover.bus.trust import signing
from drover.bus.trust.keys import KeyPair
from drover.config.placement import applications_on
from drover.config.schema import FleetConfig
from drover.model.override import Override, effective_target
from drover.model.secret import plain_and_secret
from drover.ops.clock import Clock
from drover.server.discovery.matching import Claim
from drover.server.fleet import FleetView


def desired_for_host(
    config: FleetConfig,
    host: str,
    overrides: Sequence[Override] = (),
    now: datetime | None = None,
    claims: Sequence[Claim] = (),
) -> DesiredState:
    """What `host` should run: the config and the units discovery claimed on the host (those
    not vanished), with the overrides in force at `now` applied."""
    at = now or datetime.now(UTC)
    services = [
        DesiredService(
            application=app_name,
            service=svc_name,
            provider=svc.provider,
            target=effective_target(svc.target, overrides, app_name, svc_name, host, at)[0],
            command=list(svc.command),
            env=plain_and_secret(svc.env)[0],
            secrets=plain_and_secret(svc.env)[1],
            cwd=svc.cwd,
            unit=svc.unit,
            status_command=list(svc.status),
            start_command=list(svc.start),
            stop_command=list(svc.stop),
            timeout=svc.timeout,
            check_interval=svc.check_interval,
            stop_timeout=svc.stop_timeout,
            policy=svc.policy,
            max_attempts=svc.max_attempts,
        )
        for app_name, app in applications_on(config, host).items()
        for svc_name, svc in sorted(app.services.items())
    ]
    services += [
        DesiredService(
            application=claim.application,
            service=claim.service,
            provider="systemd",
            target=effective_target(
                claim.rule.target, overrides, claim.application, claim.service, host, at
            )[0],
            unit=claim.unit.unit,
            policy=claim.rule.policy,
            max_attempts=claim.rule.max_attempts,
        )
        for claim in claims
        if not claim.vanished
    ]
    targets = [
        SshTarget(
            host=name,
            address=spec.ssh.address or name,
            port=spec.ssh.port,
            user=spec.ssh.user,
            host_key=spec.ssh.host_key,
            key=spec.ssh.key.secret if spec.ssh.key else None,
            password=spec.ssh.password.secret if spec.ssh.password else None,
            sudo=spec.ssh.sudo,
            check_interval=spec.ssh.check_interval,
            connect_timeout=spec.ssh.connect_timeout,
        )
        for name, spec in sorted(config.hosts.items())
        if spec.ssh is not None and spec.ssh.via == host
    ]
    return DesiredState(host=host, revision=config.revision, services=services, targets=targets)


# Overrides made through another server reach this one only through the system of record.
RECHECK_EVERY = 5.0
YIELD_EVERY = 200  # hosts computed between two turns of the event loop


class DesiredPublisher:
    def __init__(
        self,
        bus: Bus,
        fleet: FleetView,
        clock: Clock,
        overrides: Callable[[], Awaitable[list[Override]]] | None = None,
        claims: Callable[[str], Sequence[Claim]] = lambda host: (),
        *,
        signer: KeyPair,
    ) -> None:
        self._signer = signer
        self._bus = bus
        self._fleet = fleet
        self._clock = clock
        self._overrides = overrides
        self._claims = claims
        self._config: FleetConfig | None = None
        # What was written for each host, encoded: bytes are no work for the cycle collector,
        # while 10,000 hosts' models would be a million objects for it to go through.
        self._written: dict[str, bytes] = {}
        # The newest `issued_at` of each host's desired state on the bus: the next is later,
        # even if this server's clock is behind the one that wrote it (an agent takes no
        # desired state older than the one it holds).
        self._issued: dict[str, datetime] = {}
        self._wake = asyncio.Event()

    async def config_changed(self, config: FleetConfig) -> None:
        self._config = config
        self._wake.set()

    def use_overrides(self, source: Callable[[], Awaitable[list[Override]]]) -> None:
        """Where the overrides in force come from (the system of record, once it is open)."""
        self._overrides = source

    async def overrides_changed(self) -> None:
        self._wake.set()

    def claims_changed(self) -> None:
        self._wake.set()

    def hosts(self) -> set[str]:
        named = set(self._config.hosts) if self._config else set()
        return named | set(self._fleet.hosts)

    async def publish(self) -> None:
        """One life of the loop: writes whatever differs, then waits for a reason to look again.

        A look computes every host's desired state only when what it is made of changed (the
        config, the overrides in force, discovery's claims, or a wake); otherwise only the
        hosts not yet written (joined, forgotten): at 10,000 hosts a pass over all costs
        seconds, and hosts join by the thousand when a fleet starts."""
        generation = self._bus.generation
        # A new life (after a reconnect, or on taking the lease from another server) writes
        # everything again, and asks the bus what was issued last.
        self._written.clear()
        self._issued.clear()
        present: set[str] = set()
        made_of: tuple[object, ...] | None = None
        while self._bus.generation == generation:
            woken = self._wake.is_set()
            self._wake.clear()
            self._fleet.changed.clear()
            overrides = await self._overrides() if self._overrides else []
            now = self._clock.now()
            config = self._config
            if config is not None:
                hosts = self.hosts()
                for gone in set(self._written) - hosts:  # left the fleet: written anew if back
                    del self._written[gone]
                # A host that (re)joins the fleet, e.g. enrolled again after another server
                # decommissioned it and deleted its key, is written anew.
                joined = self._fleet.hosts.keys() - present
                present = set(self._fleet.hosts)
                for host in joined:
                    self._written.pop(host, None)
                    self._issued.pop(host, None)
                in_force = tuple(o for o in overrides if o.active(now))
                whole = woken or made_of != (id(config), in_force)
                made_of = (id(config), in_force)
                due = hosts if whole else hosts - self._written.keys()
                for done, host in enumerate(sorted(due)):
                    if done % YIELD_EVERY == YIELD_EVERY - 1:
                        await asyncio.sleep(0)  # the API and the fleet's watch run meanwhile
                    desired = desired_for_host(config, host, overrides, now, self._claims(host))
                    encoded = encode(desired)
                    if self._written.get(host) != encoded:
                        await self._write(host, desired, now)
                        self._written[host] = encoded
            # Look again when the next override runs out, at the latest.
            expiries = [(o.expires_at - now).total_seconds() for o in overrides]
            timeout = max(0.05, min([RECHECK_EVERY, *expiries]))
            await _either(self._wake, self._fleet.changed, timeout=timeout)

    def forget(self, host: str) -> None:
        """Write the host's desired state again when it is next due (it was decommissioned:
        its key is gone from the bus, and it may come back)."""
        self._written.pop(host, None)
        self._issued.pop(host, None)
        self._wake.set()

    async def _write(self, host: str, desired: DesiredState, now: datetime) -> None:
        """Signed, like an action: it says what the host runs (bus/trust/signing.py)."""
        if host not in self._issued:
            self._issued[host] = await self._issued_on_bus(host)
        issued = max(now, self._issued[host] + timedelta(microseconds=1))
        payload = encode(desired.model_copy(update={"issued_at": issued}))
        subject = subjects.kv_subject(subjects.DESIRED_BUCKET, subjects.desired_key(host))
        await self._bus.publish(subject, payload, headers=signing.sign(self._signer, payload))
        self._issued[host] = issued

    async def _issued_on_bus(self, host: str) -> datetime:
        kv = await self._bus.kv(subjects.DESIRED_BUCKET)
        try:
            entry = await kv.get(subjects.desired_key(host))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return _NEVER
        if not entry.value:
            return _NEVER
        try:
            issued = decode(DesiredState, entry.key, entry.value).issued_at
        except MalformedMessage:
            return _NEVER
        return issued or _NEVER


_NEVER = datetime.min.replace(tzinfo=UTC)


async def _either(a: asyncio.Event, b: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await w
