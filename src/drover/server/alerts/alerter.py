"""The alerter: every EVERY seconds, what the rules find, against what they found before.

An alert (a rule and a key) that has held its rule's `after` is sent `firing` to the rule's
channels, once; `repeat` every `renotify` seconds while it holds; `resolved` once when it no
longer does, if it was ever sent. A silence that matches it holds back `firing` and `repeat`
(and so the `resolved` of what was never sent); an alert still holding when its silence ends is
sent then. Each round's news goes to a channel as one message. A channel that fails keeps its
news for the next round (MAX_UNSENT at most, the oldest dropped, counted).

Only the server that drives the fleet (the lease holder, server/lease.py) runs it, so several
servers send each alert once. Which alerts were sent is kept in memory: a server that takes
over, or restarts, sends `firing` again once for what still holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from drover.bus.connection import Bus
from drover.config.schema import AlertRule, FleetConfig
from drover.ops.cancels import bounded
from drover.ops.clock import Clock
from drover.ops.counters import Counters
from drover.ops.metrics import Metrics
from drover.server.alerts.channels import ChannelFailed, News, send
from drover.server.alerts.conditions import Facts, found
from drover.server.fleet import FleetView
from drover.store.actions import ActionStore
from drover.store.silences import Silence, SilenceStore

log = logging.getLogger(__name__)

EVERY = 15.0  # seconds between rounds
MAX_UNSENT = 1000  # news a failing channel keeps for its next try
SEND_BOUND = 60.0  # seconds one channel may take for a round
JETSTREAM_BOUND = 10.0


@dataclass
class Alert:
    rule: str
    key: str
    summary: str
    since: datetime  # the condition holds since (as the fleet knows it, or as first seen)
    channels: list[str]
    notified_at: datetime | None = None  # last sent (firing or repeat); None: never
    silenced_by: str | None = None  # the id of a silence holding it back


@dataclass
class _Outbox:
    unsent: list[News] = field(default_factory=list)
    failing: bool = False


class Alerter:
    def __init__(
        self,
        config: Callable[[], FleetConfig | None],
        fleet: FleetView,
        actions: ActionStore,
        silences: SilenceStore,
        bus: Bus,
        metrics: Metrics,
        counters: Counters,
        clock: Clock,
        every: float = EVERY,
    ) -> None:
        self._config = config
        self._fleet = fleet
        self._actions = actions
        self._silences = silences
        self._bus = bus
        self._metrics = metrics
        self._counters = counters
        self._clock = clock
        self.every = every
        self.alerts: dict[tuple[str, str], Alert] = {}
        self._outboxes: dict[str, _Outbox] = {}
        self._stalls_counted: dict[str, float] = {}
        self._stalled: dict[str, datetime] = {}
        self.rounds = 0

    async def run(self) -> None:
        """A loop: a round every `every` seconds."""
        while True:
            await self.round()
            await asyncio.sleep(self.every)

    async def round(self) -> None:
        now = self._clock.now()
        config = self._config()
        if config is None or not (config.alerts or self.alerts):
            return  # no rules (and nothing left to clear): nothing to look at
        facts = await self._facts(config, now)
        silences = await self._silences.listed(now, active_only=True)
        news: list[tuple[list[str], News]] = []
        seen: set[tuple[str, str]] = set()
        for name, rule in sorted(config.alerts.items()):
            for finding in found(name, rule, facts):
                seen.add((name, finding.key))
                alert = self.alerts.get((name, finding.key))
                if alert is None:
                    alert = Alert(name, finding.key, finding.summary, finding.since, [])
                    self.alerts[name, finding.key] = alert
                alert.summary, alert.channels = finding.summary, list(rule.channels)
                alert.since = min(alert.since, finding.since)
                silence = _matching(silences, name, finding.key)
                alert.silenced_by = silence.id if silence else None
                if silence is None and (state := _due(alert, rule, now)) is not None:
                    alert.notified_at = now
                    news.append((alert.channels, _news(alert, state)))
        for key in [key for key in self.alerts if key not in seen]:
            alert = self.alerts.pop(key)
            if alert.notified_at is not None:
                news.append((alert.channels, _news(alert, "resolved")))
        for channels, item in news:
            for channel in channels:
                self._outboxes.setdefault(channel, _Outbox()).unsent.append(item)
        await self._deliver(config)
        self.rounds += 1

    def firing(self) -> list[Alert]:
        """The alerts holding now, sent or not (pending `after`, or silenced)."""
        return sorted(self.alerts.values(), key=lambda alert: (alert.rule, alert.key))

    async def _facts(self, config: FleetConfig, now: datetime) -> Facts:
        outcomes = {}
        backlog: dict[str, dict[str, int]] = {}
        for name, rule in config.alerts.items():
            if rule.when == "action_failure_rate":
                since = now - timedelta(seconds=rule.window)
                outcomes[name] = await self._actions.outcomes_since(since, rule.applications)
            elif rule.when == "stream_backlog" and rule.stream and rule.stream not in backlog:
                backlog[rule.stream] = await self._backlog(rule.stream)
        self._count_stalls(now)
        return Facts(now, self._fleet, outcomes, backlog, dict(self._stalled))

    async def _backlog(self, stream: str) -> dict[str, int]:
        """Consumer → messages not yet delivered or not yet acknowledged."""
        try:
            consumers = await bounded(self._bus.js.consumers_info(stream), JETSTREAM_BOUND)
        except Exception as err:  # no such stream, or the bus is away: nothing to say now
            log.debug("stream %s: no consumer information: %r", stream, err)
            return {}
        return {
            info.name: (info.num_pending or 0) + (info.num_ack_pending or 0)
            for info in consumers
            if info.name is not None
        }

    def _count_stalls(self, now: datetime) -> None:
        """Stalls the server's consumers found since the last round (ops/metrics.py)."""
        for metric in self._metrics.consumer_stalls.collect():
            for sample in metric.samples:
                if not sample.name.endswith("_total"):
                    continue
                consumer = sample.labels["consumer"]
                if sample.value > self._stalls_counted.get(consumer, 0):
                    self._stalled[consumer] = now
                self._stalls_counted[consumer] = sample.value

    async def _deliver(self, config: FleetConfig) -> None:
        for name, outbox in self._outboxes.items():
            if not outbox.unsent:
                continue
            channel = config.channels.get(name)
            if channel is None:
                outbox.unsent.clear()  # gone from the config with its rule
                continue
            try:
                await bounded(send(name, channel, outbox.unsent), SEND_BOUND)
            except (ChannelFailed, TimeoutError) as err:
                self._counters.inc("server.alert_send_failures")
                if not outbox.failing:
                    log.warning("alerts not sent: %s; trying again next round", err or "timeout")
                outbox.failing = True
                if (dropped := len(outbox.unsent) - MAX_UNSENT) > 0:
                    del outbox.unsent[:dropped]
                    self._counters.inc("server.alert_news_dropped", dropped)
                continue
            if outbox.failing:
                log.info("channel %s takes alerts again", name)
            outbox.failing = False
            self._counters.inc("server.alert_news_sent", len(outbox.unsent))
            outbox.unsent.clear()


def _due(alert: Alert, rule: AlertRule, now: datetime) -> str | None:
    """What is to be sent of an alert not silenced: `firing` once it has held `after`,
    `repeat` every `renotify`; None: nothing now."""
    if now - alert.since < timedelta(seconds=rule.after):
        return None
    if alert.notified_at is None:
        return "firing"
    if rule.renotify and now - alert.notified_at >= timedelta(seconds=rule.renotify):
        return "repeat"
    return None


def _matching(silences: Sequence[Silence], rule: str, key: str) -> Silence | None:
    for silence in silences:
        if silence.rule not in (None, rule):
            continue
        if silence.key is not None and not fnmatchcase(key, silence.key):
            continue
        return silence
    return None


def _news(alert: Alert, state: str) -> News:
    return News(alert.rule, alert.key, state, alert.summary, alert.since)
