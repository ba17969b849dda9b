"""The server's composition root: builds the parts, runs their loops, drains on stop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from drover.bus import subjects, topology
from drover.bus.connection import Bus, BusSettings
from drover.bus.errors import ReplicasRefused
from drover.bus.trust import permissions
from drover.bus.trust.authority import Authority
from drover.bus.trust.credentials import BusIdentity
from drover.bus.trust.keys import KeyPair, Kind
from drover.config.schema import FleetConfig
from drover.config.source import open_source
from drover.ops.cancels import checkpoint, end
from drover.ops.clock import Clock, SystemClock
from drover.ops.counters import Counters
from drover.ops.loops import forever, unless_stopped, until_success
from drover.ops.metrics import Metrics
from drover.server.alerts.alerter import Alerter
from drover.server.api.app import create_app
from drover.server.approvals import Approvals
from drover.server.auth.service import Access, build_access
from drover.server.auth.settings import AuthSettings
from drover.server.canary import Canary
from drover.server.configsync import ConfigFailure, ConfigSync
from drover.server.context import ServerContext
from drover.server.desired import DesiredPublisher
from drover.server.discovery.tracker import Discovery
from drover.server.enrollment import Enrollment, EnrollmentSettings
from drover.server.fleet import FleetView
from drover.server.http import HttpServer
from drover.server.lease import Lease
from drover.server.live import LiveEvents
from drover.server.orchestrator import DEFAULT_ANSWER_GRACE, DEFAULT_OUTPUT_LIMIT, Orchestrator
from drover.server.output_collector import OutputCollector
from drover.server.overrides import Overrides
from drover.server.scheduler import Scheduler
from drover.store.actions import ActionStore
from drover.store.approvals import ApprovalStore
from drover.store.audit import AuditEntry, AuditLog
from drover.store.audit import listen as audit_listen
from drover.store.database import open_database
from drover.store.enrollment import EnrollmentStore
from drover.store.output import OutputStore
from drover.store.overrides import OverrideStore
from drover.store.schedules import ScheduleStore
from drover.store.silences import SilenceStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSettings:
    config_path: Path
    database_url: str
    config_ref: str | None = None
    config_subdir: str = ""
    config_poll_interval: float = 5.0
    answer_grace: timedelta = DEFAULT_ANSWER_GRACE
    output_limit: int = DEFAULT_OUTPUT_LIMIT  # bytes of a command's output kept per host
    alert_every: float = 15.0  # seconds between rounds of the alert rules (server/alerts)
    canary_every: float = 300.0  # seconds between canary pings (server/canary.py); 0: none
    schedule_tick: float = 5.0  # seconds between looks at the schedules (server/scheduler.py)
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    bus: BusSettings = field(default_factory=lambda: BusSettings(name="drover-server"))
    # Copies of every stream and bucket: 1 on a single nats-server, 3 on a 3-node cluster.
    bus_replicas: int = 1
    auth: AuthSettings = field(default_factory=AuthSettings)
    # The bus authority's keys (`drover bus init`): the server mints every bus credential
    # and signs every action with them.
    bus_authority: Path = Path("/var/lib/drover/bus")
    enrollment: EnrollmentSettings = field(default_factory=EnrollmentSettings)
    # Seconds a stopping server still serves with /healthz failing, so that a balancer's
    # checks take it out of rotation before it stops listening (0: no balancer in front).
    drain_grace: float = 5.0


class Server:
    def __init__(self, settings: ServerSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.counters = Counters()
        self.metrics = Metrics("server", self.counters)
        self.authority = Authority.load(settings.bus_authority)
        self.bus = Bus(self._own_identity(settings.bus, system=False), self.counters, self.metrics)
        # Its user in the system account: it only tells nats-server of revocations.
        self.system_bus = Bus(self._own_identity(settings.bus, system=True), self.counters)
        # Several servers may run side by side; the one holding this lease drives the rollouts
        # and writes desired states (server/lease.py).
        self.lease = Lease(self.bus, f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
        self.fleet = FleetView(self.bus)
        self.live = LiveEvents()
        self.fleet.listeners.append(self.live.fleet_changed)
        self.discovery = Discovery(self.bus, on_change=lambda: self.desired.claims_changed())
        self.desired = DesiredPublisher(
            self.bus,
            self.fleet,
            self.clock,
            claims=self.discovery.claims,
            signer=self.authority.signer,
        )
        source = open_source(settings.config_path, settings.config_ref, settings.config_subdir)
        self.config = ConfigSync(
            source,
            self.clock,
            settings.config_poll_interval,
            self._config_changed,
            self._config_rejected,
        )
        self.http: HttpServer | None = None
        self.canary: Canary | None = None  # set once it runs
        self._audit: AuditLog | None = None
        self.access: Access | None = None  # once running: users and tokens, e.g. to bootstrap
        self.enrollment: Enrollment | None = None  # once running: hosts' bus credentials
        self._topology_ensured = 0  # the bus generation the topology was last made for
        self.ready = asyncio.Event()

    def _own_identity(self, bus: BusSettings, *, system: bool) -> BusSettings:
        """The server's bus credentials: a key made for this process alone (never written
        down), and a JWT for it that the authority mints."""
        key = KeyPair.create(Kind.USER)
        rights = permissions.claims_pusher() if system else permissions.server()
        name = bus.name + ("-system" if system else "")
        token = self.authority.issue_user(name, key.public_key, rights, None, system=system)
        return replace(
            bus,
            name=name,
            identity=BusIdentity(key, lambda: token),
            inbox_prefix=subjects.SERVER_INBOX,
        )

    def _environment_of(self, application: str) -> str | None:
        """The application's environment in the active config: recorded on each new action."""
        config = self.config.active
        app = config.applications.get(application) if config is not None else None
        return app.environment if app is not None else None

    async def run(self, stop: asyncio.Event) -> None:
        self.metrics.loop = asyncio.get_running_loop()
        engine = await open_database(self.settings.database_url)
        try:
            await self._run(engine, stop)
        finally:
            self.live.close()
            await engine.dispose()

    async def _run(self, engine: AsyncEngine, stop: asyncio.Event) -> None:
        audit = self._audit = AuditLog(engine)
        audit_listen(engine, self.live.audited)
        access = self.access = build_access(
            engine, audit, self.clock, self.settings.auth, lambda: self.config.active
        )
        store = ActionStore(engine, self._environment_of)
        approval_store = ApprovalStore(engine)
        overrides = Overrides(
            OverrideStore(engine),
            self.clock,
            lambda: self.config.active,
            self.desired.overrides_changed,
            self.discovery.services_of,
        )
        self.desired.use_overrides(overrides.active)
        orchestrator = Orchestrator(
            store,
            self.bus,
            self.fleet,
            lambda: self.config.active,
            self.clock,
            self.settings.answer_grace,
            self.discovery.services_of,
            approvals=approval_store,
            output_limit=self.settings.output_limit,
            signer=self.authority.signer,
            audit=audit,
            drives=self.lease.held.is_set,
        )
        enrollment = self.enrollment = Enrollment(
            EnrollmentStore(engine),
            self.authority,
            self.bus,
            self.system_bus,
            self.clock,
            self.settings.enrollment,
        )
        approvals = Approvals(approval_store, store, audit, self.clock, orchestrator.wake)
        silences = SilenceStore(engine)
        schedules = ScheduleStore(engine)
        scheduler = Scheduler(
            orchestrator,
            schedules,
            lambda: self.config.active,
            self.clock,
            self.settings.schedule_tick,
        )
        canary = self.canary = Canary(
            orchestrator,
            store,
            self.fleet,
            lambda: self.config.active,
            self.clock,
            self.metrics,
            self.settings.canary_every,
        )
        alerter = Alerter(
            lambda: self.config.active,
            self.fleet,
            store,
            silences,
            self.bus,
            self.metrics,
            self.counters,
            self.clock,
            self.settings.alert_every,
        )
        output = OutputCollector(OutputStore(engine), self.bus, self.clock)
        ctx = ServerContext(
            self.bus,
            self.fleet,
            self.config,
            orchestrator,
            store,
            overrides,
            self.discovery,
            audit,
            self.clock,
            self.counters,
            self.clock.now(),
            approvals=approvals,
            access=access,
            output=output,
            live=self.live,
            enrollment=enrollment,
            desired=self.desired,
            metrics=self.metrics,
            silences=silences,
            alerter=alerter,
            schedules=schedules,
        )
        self.http = HttpServer(
            create_app(ctx), self.settings.listen_host, self.settings.listen_port
        )
        async with asyncio.TaskGroup() as tg:
            http = tg.create_task(self.http.serve())
            started, _ = await unless_stopped(self._start(enrollment), stop)
            loops = (
                []
                if not started
                else [
                    tg.create_task(forever(name, body, self.counters), name=name)
                    for name, body in (
                        ("server.fleet", self.fleet.watch),
                        ("server.discovery", self.discovery.watch),
                        ("server.config", self.config.run),
                        ("server.lease", self.lease.keep),
                        ("server.desired", partial(self.lease.while_held, self.desired.publish)),
                        ("server.results", orchestrator.consume_results),
                        ("server.dispatch", partial(self.lease.while_held, orchestrator.dispatch)),
                        ("server.output", output.consume),
                        ("server.output_close", output.close_finished),
                        ("server.topology", partial(self._keep_topology, enrollment)),
                        ("server.sessions", access.sessions.purge_ended),
                        ("server.lifecycle", self._sweep_lifecycle),
                        ("server.account", enrollment.keep_account_current),
                        ("server.alerts", partial(self.lease.while_held, alerter.run)),
                        ("server.canary", partial(self.lease.while_held, canary.run)),
                        ("server.schedules", partial(self.lease.while_held, scheduler.run)),
                    )
                ]
            )
            if started:
                self.ready.set()
                log.info("server on http://%s:%d", self.settings.listen_host, self.http.port)
                await stop.wait()
                await self._drain(ctx)
            output.changes.close()  # live output streams end; their readers resume elsewhere
            self.live.close()  # and so do the GUI's change streams
            self.http.stop()
            await http
            await end(loops)
        await self.lease.release()  # another server drives the rollouts from its next try
        await self.bus.close()
        await self.system_bus.close()
        log.info("server stopped")

    async def _drain(self, ctx: ServerContext) -> None:
        """Stop being chosen before stopping: /healthz answers 503 and each answer closes its
        connection, for `drain_grace` seconds, while everything is still served. Then the API
        stops listening and finishes the requests under way."""
        ctx.draining.set()
        grace = self.settings.drain_grace
        if grace > 0:
            log.info("draining: /healthz answers 503; the API stops listening in %gs", grace)
            await asyncio.sleep(grace)

    async def _config_changed(self, config: FleetConfig) -> None:
        if self._audit is not None:
            detail = {
                "applications": len(config.applications),
                "source": self.config.source.description,
            }
            entry = AuditEntry(
                "drover", "config.applied", config.revision, self.clock.now(), detail
            )
            await self._audit.record(entry)
        self.discovery.config_changed(config)
        await self.desired.config_changed(config)

    async def _config_rejected(self, failure: ConfigFailure) -> None:
        if self._audit is None:
            return
        detail = {
            "message": failure.message,
            "problems": [str(p) for p in failure.problems[:50]],
            "kept": self.config.active.revision if self.config.active else None,
            "source": self.config.source.description,
        }
        subject = failure.revision or "unknown"
        entry = AuditEntry("drover", "config.rejected", subject, self.clock.now(), detail)
        await self._audit.record(entry)

    async def _sweep_lifecycle(self) -> None:
        """Hosts go offline and lost by time passing: the live pages hear of it within 2 s."""
        while True:
            self.fleet.sweep(self.clock.now())
            await asyncio.sleep(2.0)

    async def _keep_topology(self, enrollment: Enrollment) -> None:
        """After every reconnect, make sure the streams, buckets and hosts' consumers exist
        again: the bus may have come back empty (invariant 2), and every other loop would fail
        until they do."""
        while True:
            # On the instance: a life of this loop that failed leaves it unchanged, so the
            # next life (after the backoff) tries again.
            if self.bus.generation != self._topology_ensured:
                generation = self.bus.generation
                await topology.ensure(self.bus.js, self.settings.bus_replicas)
                await enrollment.ensure_all_consumers()
                self._topology_ensured = generation
                log.info("streams and buckets ensured after reconnect")
            checkpoint()  # the cancel a NATS call this round may have swallowed
            await asyncio.sleep(0.5)

    async def _ensure_topology(self) -> None:
        """The streams and buckets, tried until made: nats-server may be starting, or its
        cluster short of the nodes the replicas need. A replica count it can never keep (it is
        not clustered) ends the start instead: the CLI says why, no wait would help."""
        refused: list[ReplicasRefused] = []

        async def ensure() -> None:
            try:
                await topology.ensure(self.bus.js, self.settings.bus_replicas)
            except ReplicasRefused as err:
                if not err.permanent:
                    raise
                refused.append(err)

        await until_success("server.topology", ensure, self.counters)
        if refused:
            raise refused[0]

    async def _start(self, enrollment: Enrollment) -> None:
        await self.bus.connect()
        await self._ensure_topology()
        await until_success("server.consumers", enrollment.ensure_all_consumers, self.counters)
        await self.config.poll_once()
