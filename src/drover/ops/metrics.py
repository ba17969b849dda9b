"""One drover process's Prometheus metrics: what its /metrics serves.

Each process (server, agent) has a registry of its own, so several can live in one test
process. Three kinds of figure:

- recorded as they happen: messages in and out, consumer position and lag, stalls, actions;
- the `Counters` loops keep anyway (failures, reconnects, refusals), exported at scrape time
  under names of their own (`bus.reconnects` → `drover_bus_reconnects_total`), every known one
  from zero so that a first failure is an increase an alert can see;
- read at scrape time: asyncio tasks, the bus connection, and whatever the process adds
  with `read_at_scrape` (the server: hosts by lifecycle, services by how they stand).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from drover.ops.buildinfo import build_info
from drover.ops.counters import COUNTED, Counters

# `_created` series double every counter's size and nobody graphs them.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Action durations run from a no-op's milliseconds to a slow service's minutes.
ACTION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

Read = Callable[[], Iterable[Metric]]


class Metrics:
    def __init__(self, role: str, counters: Counters) -> None:
        self.role = role
        self.counters = counters
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        registry = self.registry
        self.messages_published = Counter(
            "drover_bus_messages_published",
            "Messages this process published, by kind (event, action, result, output, …).",
            ["kind"],
            registry=registry,
        )
        self.messages_received = Counter(
            "drover_bus_messages_received",
            "Messages this process took from a consumer or a KV watch, by consumer or bucket.",
            ["consumer"],
            registry=registry,
        )
        self.bus_errors = Counter(
            "drover_bus_operation_errors",
            "Bus operations that failed, by operation (publish, fetch, watch, put).",
            ["operation"],
            registry=registry,
        )
        self.consumer_pending = Gauge(
            "drover_consumer_pending_messages",
            "Messages waiting for a consumer, as of the last message it took or its last check.",
            ["consumer"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "drover_consumer_lag_seconds",
            "How old the last message a consumer took was when it took it.",
            ["consumer"],
            registry=registry,
        )
        self.consumer_stalls = Counter(
            "drover_consumer_stalls",
            "Times a consumer had work waiting and took none for too long, and was recreated.",
            ["consumer"],
            registry=registry,
        )
        self.actions = Histogram(
            "drover_action_duration_seconds",
            "Actions from start to end (server: the whole action; agent: its run on this host),"
            " by kind and outcome.",
            ["kind", "outcome"],
            buckets=ACTION_BUCKETS,
            registry=registry,
        )
        # Service level indicators (server): the action API's answers, the canary's runs.
        self.action_api = Counter(
            "drover_sli_action_api_requests",
            "Requests to the action API (/api/v1/actions…), by result: ok (any answer but a "
            "5xx), error (a 5xx, or no answer). Availability: ok / all.",
            ["result"],
            registry=registry,
        )
        self.host_results = Counter(
            "drover_sli_host_results",
            "Host results of finished actions, by result: completed (succeeded), identified (ended "
            "otherwise with a known cause: failed, refused, interrupted, cancelled, skipped, or "
            "expired as the agent saw it), unexplained (expired with no answer from the host). "
            "Reliability: (completed + identified) / all.",
            ["result"],
            registry=registry,
        )
        self.canary_runs = Counter(
            "drover_canary_runs",
            "Canary pings through the whole action path, by outcome: ok, failed (ended "
            "otherwise, its cause recorded), lost (not final by its deadline). "
            "Reliability: (ok + failed) / all.",
            ["outcome"],
            registry=registry,
        )
        self.canary_seconds = Histogram(
            "drover_canary_duration_seconds",
            "A canary ping from its submission to its final outcome.",
            buckets=ACTION_BUCKETS,
            registry=registry,
        )
        self.bus_connected: Callable[[], bool] = lambda: False
        # The process's event loop: its tasks are counted, also from the agent's scrape thread.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._readers: list[Read] = []
        registry.register(_AtScrape(self))

    def read_at_scrape(self, read: Read) -> None:
        """Add figures computed at each scrape (cheap ones: a scrape runs on the event loop)."""
        self._readers.append(read)

    def exposition(self, extra: Iterable[Metric] = ()) -> bytes:
        """The text a Prometheus scrape gets, with `extra` figures computed for this scrape."""
        return generate_latest(_Joined(self.registry, list(extra)))


class _Joined(Collector):
    def __init__(self, registry: CollectorRegistry, extra: list[Metric]) -> None:
        self._registry = registry
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
        yield from self._extra


def gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class _AtScrape(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        build = build_info()
        info = gauge("drover_build_info", "The running build (always 1).", ["role", "version"])
        info.add_metric([metrics.role, build.version], 1)
        yield info
        tasks = gauge("drover_asyncio_tasks", "asyncio tasks alive in this process.")
        tasks.add_metric([], _task_count(metrics.loop))
        yield tasks
        connected = gauge("drover_bus_connected", "1 while connected to NATS, else 0.")
        connected.add_metric([], float(metrics.bus_connected()))
        yield connected
        yield from _counted(metrics.role, metrics.counters)
        for read in metrics._readers:
            yield from read()

    def describe(self) -> Iterator[Metric]:
        return iter(())  # computed at scrape; nothing to check at registration


def _task_count(loop: asyncio.AbstractEventLoop | None) -> int:
    """Tasks of `loop`; all_tasks is safe to call from another thread (it retries while the
    set changes under it)."""
    return len(asyncio.all_tasks(loop)) if loop is not None and not loop.is_closed() else 0


def _counted(role: str, counters: Counters) -> Iterator[Metric]:
    """`Counters` as counter families: `loop_errors.<loop>` under one name with a label,
    the rest each under its own name. Every name of COUNTED this role counts is there from
    zero."""
    counts = counters.snapshot()
    loops = CounterMetricFamily(
        "drover_loop_errors", "Failures of a background loop, which then retried.", labels=["loop"]
    )
    for name, value in counts.items():
        if name.startswith("loop_errors."):
            loops.add_metric([name.removeprefix("loop_errors.")], value)
    yield loops
    known = {name for name in COUNTED if name.split(".")[0] in ("bus", role)}
    for name in sorted(known | {n for n in counts if not n.startswith("loop_errors.")}):
        family = CounterMetricFamily(
            "drover_" + name.replace(".", "_").replace("-", "_"),
            COUNTED.get(name, name),
        )
        family.add_metric([], counts.get(name, 0))
        yield family
