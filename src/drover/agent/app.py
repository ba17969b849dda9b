"""The agent's composition root: builds the parts, runs their loops, drains on stop."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from prometheus_client.core import CounterMetricFamily, Metric

from drover.agent.commands import CommandRunner
from drover.agent.desired import DesiredStateFollower
from drover.agent.enrollment import Enrollment, NotEnrolled, keep_credentials_fresh
from drover.agent.errors import UnknownService
from drover.agent.executor import Executor
from drover.agent.inventory import Inventory
from drover.agent.ledger import Ledger
from drover.agent.providers.base import Provider
from drover.agent.providers.process import ProcessProvider
from drover.agent.providers.registry import Providers
from drover.agent.providers.script import ScriptProvider
from drover.agent.reconciler import Reconciler
from drover.agent.reporter import Reporter
from drover.bus.connection import Bus, BusSettings
from drover.bus.messages import DesiredState
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus
from drover.ops.cancels import bounded, end
from drover.ops.clock import Clock, SystemClock
from drover.ops.counters import Counters
from drover.ops.loops import forever, unless_stopped
from drover.ops.metrics import Metrics, gauge
from drover.ops.metrics_endpoint import serve_metrics
from drover.ops.sdnotify import Notifier, keep_watchdog

if TYPE_CHECKING:
    from drover.agent.ssh.targets import Targets

log = logging.getLogger(__name__)

# Makes the providers instead of the host's own (drover sim's simulated ones); it gets the
# agent's task group, which its providers' tasks must live in.
OpenProviders = Callable[[asyncio.TaskGroup], list[Provider]]

# Makes what runs commands instead of the host's own (an SSH target's, agent/ssh), on the bus
# the agent makes.
OpenCommands = Callable[[Bus], CommandRunner]

SYSTEMD_CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class AgentSettings:
    host_id: str
    data_dir: Path  # holds its enrollment (agent/enrollment.py): `drover agent enroll` first
    bus: BusSettings = field(default_factory=BusSettings)  # its URL: the enrollment's if unset
    nats_url: str | None = None  # instead of the URLs the server gave at enrollment
    heartbeat_interval: float = 10.0
    drain_timeout: float = 30.0
    # "auto": use systemd when its D-Bus API answers; "on": refuse to start without it.
    systemd: Literal["auto", "on", "off"] = "auto"
    systemd_bus_address: str | None = None  # default: $DBUS_SYSTEM_BUS_ADDRESS or the standard
    systemd_root: Path = Path("/")  # the host's root as the agent sees it, for unit files
    metrics_listen: tuple[str, int] | None = None  # (host, port) of GET /metrics; None: off
    ssh_max_connections: int = 16  # to the SSH targets it manages, open at once (agent/ssh)
    # An agent that stands for an SSH target (agent/ssh/targets.py): what its record says.
    kind: Literal["agent", "ssh-target"] = "agent"
    via: str | None = None
    hostname: str | None = None  # default: this machine's


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        clock: Clock | None = None,
        open_providers: OpenProviders | None = None,
        open_commands: OpenCommands | None = None,
    ) -> None:
        self.settings = settings
        self._open_given = open_providers
        self.clock = clock or SystemClock()
        self.counters = Counters()
        self.metrics = Metrics("agent", self.counters)
        self.metrics.read_at_scrape(self._figures)
        self.enrollment = Enrollment.load(settings.data_dir)
        if self.enrollment.host != settings.host_id:
            raise NotEnrolled(
                f"{settings.data_dir} holds the enrollment of host {self.enrollment.host!r}, "
                f"not {settings.host_id!r}"
            )
        self.bus = Bus(
            self.enrollment.bus_settings(settings.bus, settings.nats_url),
            self.counters,
            self.metrics,
        )
        self.ledger = Ledger(settings.data_dir / "ledger.jsonl")
        self.reporter = Reporter(
            settings.host_id,
            self.bus,
            self.clock,
            settings.heartbeat_interval,
            settings.data_dir / "events.spool",
            hostname=settings.hostname,
            kind=settings.kind,
            via=settings.via,
        )
        self.executor = Executor(
            settings.host_id,
            self.bus,
            self.ledger,
            self._act,
            self.clock,
            self._services_of,
            commands=open_commands(self.bus) if open_commands else None,
            signer=self.enrollment.action_signer,
        )
        self.desired = DesiredStateFollower(
            settings.host_id,
            self.bus,
            settings.data_dir / "desired.json",
            self._apply,
            signer=self.enrollment.action_signer,
        )
        self.providers: Providers | None = None
        self.reconciler: Reconciler | None = None
        self.inventory: Inventory | None = None  # with systemd: its units, for discovery
        self.targets: Targets | None = None  # the hosts it manages over SSH
        if settings.kind == "agent":
            from drover.agent.ssh.targets import Targets  # which run Agents: imported late

            self.targets = Targets(settings, self.enrollment, self.clock)
        self.ready = asyncio.Event()
        # Actions wait until the agent knows what it runs: an action that arrives before the
        # first desired state would otherwise fail with "no such service".
        self.desired_known = asyncio.Event()

    async def run(self, stop: asyncio.Event, notifier: Notifier | None = None) -> None:
        """Run until `stop`, then drain; `notifier` tells systemd (ops/sdnotify.py)."""
        notifier = notifier or Notifier()
        watched: list[asyncio.Task[None]] = []
        self.metrics.loop = asyncio.get_running_loop()
        endpoint = None
        if self.settings.metrics_listen is not None:
            endpoint = await serve_metrics(self.metrics, *self.settings.metrics_listen)
        try:
            await self._run(stop, notifier, watched)
        finally:
            if endpoint is not None:
                endpoint.close()

    async def _run(
        self, stop: asyncio.Event, notifier: Notifier, watched: list[asyncio.Task[None]]
    ) -> None:
        async with asyncio.TaskGroup() as tg:
            watchdog = tg.create_task(keep_watchdog(notifier, watched), name="agent.watchdog")
            opened = await self._open_providers(tg)
            self.providers = Providers(self.settings.host_id, opened, self.clock)
            if self._open_given is None and any(p.name == "systemd" for p in opened):
                self.inventory = self._inventory()
            # provider → reconciler (judges drift, corrects it) → reporter
            self.reconciler = Reconciler(self._act, self.clock, tg, self.reporter.on_change)
            self.providers.subscribe(self.reconciler.on_state)
            await self.desired.load_cached()
            # Before the first connect: credentials that lapsed while the agent was off are
            # renewed over the API, and the connect that nats-server kept refusing goes through.
            credentials = tg.create_task(
                forever("agent.credentials", self._keep_credentials_fresh, self.counters),
                name="agent.credentials",
            )
            notifier.status("connecting to NATS")
            connected, _ = await unless_stopped(self.bus.connect(), stop)
            loops = [credentials]
            if connected:
                bodies = [
                    ("agent.report", self.reporter.publish_changes),
                    ("agent.heartbeat", self.reporter.heartbeat),
                    ("agent.desired", self.desired.follow),
                    ("agent.actions", self._consume_actions),
                    # Not behind the first desired state, unlike actions: an abort must
                    # reach an action before it can start.
                    ("agent.aborts", self.executor.consume_aborts),
                ]
                if self.inventory is not None:
                    bodies.append(("agent.inventory", self.inventory.keep_current))
                    bodies.append(("agent.inventory_publish", self.inventory.publish))
                if self.targets is not None:
                    bodies.append(("agent.ssh_targets", self.targets.run))
                loops += [
                    tg.create_task(forever(name, body, self.counters), name=name)
                    for name, body in bodies
                ]
                self.ready.set()
                log.info("agent %s running", self.settings.host_id)
                watched.extend(loops)
                notifier.ready(f"agent {self.settings.host_id} running")
                await stop.wait()
            notifier.stopping("draining")
            await self._drain(loops)
            watchdog.cancel()

    def reload(self, settings: AgentSettings) -> None:
        """Take the settings that can change while running: the heartbeat interval (from the
        next heartbeat on) and the drain timeout. The rest is read once, at start."""
        self.settings = replace(
            self.settings,
            heartbeat_interval=settings.heartbeat_interval,
            drain_timeout=settings.drain_timeout,
        )
        self.reporter.heartbeat_interval = settings.heartbeat_interval

    async def _drain(self, loops: list[asyncio.Task[None]]) -> None:
        """Stop taking actions, let the one in flight finish (bounded), then stop the rest."""
        self.executor.stopping = True
        draining: list[Awaitable[object]] = [
            bounded(self.executor.idle.wait(), self.settings.drain_timeout)
        ]
        if self.targets is not None:  # their agents drain alongside
            draining.append(self.targets.close())
        await asyncio.gather(*draining, return_exceptions=True)
        await end(loops)  # before the connections they use close
        if self.reconciler is not None:
            acting = self.reconciler.close()
            if acting:  # corrections already inside a provider finish before it closes
                await asyncio.wait(acting, timeout=self.settings.drain_timeout)
        if self.providers is not None:
            await self.providers.close()
        await self.bus.close()
        self.reporter.close()
        log.info("agent %s stopped", self.settings.host_id)

    async def _open_providers(self, tg: asyncio.TaskGroup) -> list[Provider]:
        """`process` and `script` always, `systemd` when reachable. With systemd (and root),
        supervised processes are transient units, which outlive the agent; else its children."""
        if self._open_given is not None:
            return self._open_given(tg)
        host, clock, address = self.settings.host_id, self.clock, self.settings.systemd_bus_address
        script = ScriptProvider(host, clock, tg)

        def children() -> Provider:
            return ProcessProvider(host, self.settings.data_dir / "logs", clock, tg)

        if self.settings.systemd == "off":
            return [children(), script]
        import os

        from drover.agent.providers.systemd.manager import SystemdError
        from drover.agent.providers.systemd.provider import SystemdProvider
        from drover.agent.providers.systemd.transient import TransientProcessProvider

        async def connected(provider: SystemdProvider, otherwise: str) -> bool:
            try:
                await bounded(provider.connect(), SYSTEMD_CONNECT_TIMEOUT)
            except (SystemdError, TimeoutError) as err:
                if self.settings.systemd == "on":
                    raise
                log.info("systemd not reachable (%s): %s", err, otherwise)
                return False
            return True

        systemd = SystemdProvider(host, clock, tg, address)
        if not await connected(systemd, "systemd services will show as unknown"):
            return [children(), script]
        log.info("systemd provider connected")
        if os.geteuid() != 0:  # creating units takes root (or a polkit rule for this user)
            log.info("not root: supervised processes run as the agent's children")
            return [children(), script, systemd]
        transient = TransientProcessProvider(
            host, clock, tg, address, self.settings.data_dir / "secrets"
        )
        if not await connected(transient, "supervised processes run as the agent's children"):
            return [children(), script, systemd]
        log.info("supervised processes run as transient systemd units")
        return [transient, script, systemd]

    def _inventory(self) -> Inventory:
        """The unit inventory, over a D-Bus connection of its own to systemd."""
        from drover.agent.providers.systemd.inventory import UnitLister

        lister = UnitLister(self.settings.systemd_bus_address, self.settings.systemd_root)
        path = self.settings.data_dir / "inventory.json"
        return Inventory(self.settings.host_id, self.bus, lister, path, self.clock)

    async def _apply(self, desired: DesiredState) -> None:
        assert self.providers is not None and self.reconciler is not None
        self.reconciler.desired_changed(desired.services)
        if self.inventory is not None:
            self.inventory.wanted = frozenset(s.unit for s in desired.services if s.unit)
        await self.providers.apply(desired.services)
        if self.targets is not None:
            self.targets.desired(desired.targets)
        self.reporter.desired_applied(desired.revision)
        self.reporter.forget_all_but({(s.application, s.service) for s in desired.services})
        self.desired_known.set()

    async def _keep_credentials_fresh(self) -> None:
        await keep_credentials_fresh(self.enrollment)

    async def _consume_actions(self) -> None:
        await self.desired_known.wait()
        await self.executor.consume()

    def _services_of(self, application: str) -> list[str]:
        return self.providers.services_of(application) if self.providers else []

    async def _act(self, application: str, service: str, kind: ActionKind) -> str:
        if self.providers is None:
            raise UnknownService(application, service)
        return await self.providers.act(application, service, kind)

    def _figures(self) -> list[Metric]:
        """This host's services by status as last reported, and the actions run here."""
        statuses = Counter(state.status.value for state in self.reporter.latest())
        services = gauge("drover_agent_services", "This host's services by status.", ["status"])
        for status in ServiceStatus:
            services.add_metric([status.value], statuses.get(status.value, 0))
        executed = CounterMetricFamily(
            "drover_agent_actions_executed",
            "Actions this agent ran since it started (not those answered from its ledger).",
        )
        executed.add_metric([], self.executor.executions)
        figures: list[Metric] = [services, executed]
        if self.targets is not None:
            pool = self.targets.pool
            targets = gauge("drover_agent_ssh_targets", "SSH targets this agent manages.")
            targets.add_metric([], len(self.targets.agents))
            open_now = gauge(
                "drover_agent_ssh_connections",
                f"SSH connections to its targets open now (at most {pool.limit}).",
            )
            open_now.add_metric([], pool.open_count)
            opened = CounterMetricFamily(
                "drover_agent_ssh_connections_opened", "SSH connections made to its targets."
            )
            opened.add_metric([], pool.opened)
            figures += [targets, open_now, opened]
        return figures
