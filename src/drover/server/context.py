"""What the API needs from the running server, handed over in one typed object."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from drover.bus.connection import Bus
from drover.ops.clock import Clock
from drover.ops.counters import Counters
from drover.ops.metrics import Metrics
from drover.server.alerts.alerter import Alerter
from drover.server.approvals import Approvals
from drover.server.auth.service import Access
from drover.server.configsync import ConfigSync
from drover.server.desired import DesiredPublisher
from drover.server.discovery.tracker import Discovery
from drover.server.enrollment import Enrollment
from drover.server.fleet import FleetView
from drover.server.live import LiveEvents
from drover.server.orchestrator import Orchestrator
from drover.server.output_collector import OutputCollector
from drover.server.overrides import Overrides
from drover.store.actions import ActionStore
from drover.store.audit import AuditLog
from drover.store.schedules import ScheduleStore
from drover.store.silences import SilenceStore


@dataclass(frozen=True)
class ServerContext:
    bus: Bus
    fleet: FleetView
    config: ConfigSync
    orchestrator: Orchestrator
    store: ActionStore
    overrides: Overrides
    discovery: Discovery
    audit: AuditLog
    clock: Clock
    counters: Counters
    started_at: datetime
    approvals: Approvals
    access: Access  # authentication: accounts, tokens, sessions, OIDC
    output: OutputCollector  # commands' output: stored whole, followed live
    live: LiveEvents  # what changed, for the GUI's live pages
    enrollment: Enrollment  # hosts' bus credentials: tokens, requests, renewals, revocations
    desired: DesiredPublisher  # writes each host's desired state
    metrics: Metrics  # this process's, for /metrics
    silences: SilenceStore  # alerts held back (server/alerts)
    schedules: ScheduleStore  # when each schedule was due, and what came of it
    alerter: Alerter | None = None  # sends alerts (runs while this server holds the lease)
    # Set when the server begins to stop: /healthz fails so balancers send new connections
    # elsewhere, and each answer closes its connection (server/app.py).
    draining: asyncio.Event = field(default_factory=asyncio.Event)
