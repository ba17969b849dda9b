"""The server's own figures on /metrics: the fleet as it stands and the config in force.

They are computed when Prometheus scrapes, from the same picture the pages use (server.health
counts placements from a cache kept per config revision and set of hosts), so a scrape costs
what one overview costs and nothing is kept up to date between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import Metric

from drover.ops.metrics import gauge
from drover.server.context import ServerContext
from drover.server.fleet import Lifecycle
from drover.server.health import ApplicationPicture, Bucket, Counts


async def fleet_figures(ctx: ServerContext) -> list[Metric]:
    """Hosts by lifecycle, placed services by how they stand, and config sync."""
    now = ctx.clock.now()
    hosts = dict.fromkeys(Lifecycle, 0)
    for host in ctx.fleet.hosts:
        status = ctx.fleet.host_status(host, now)
        if status is not None:
            hosts[status.state] += 1
    by_lifecycle = gauge("drover_hosts", "Hosts by lifecycle.", ["lifecycle"])
    for state, count in hosts.items():
        by_lifecycle.add_metric([state.value], count)

    config = ctx.config.active
    counts = Counts()
    if config is not None:
        overrides = await ctx.overrides.active()
        online: dict[str, bool] = {}
        for name, app in config.applications.items():
            picture = ApplicationPicture(
                config, ctx.fleet, name, app, now, overrides, ctx.discovery, online
            )
            placed = picture.counts(None)
            for bucket in Bucket:
                setattr(
                    counts, bucket.value, getattr(counts, bucket.value) + _count(placed, bucket)
                )
    services = gauge(
        "drover_services",
        "Placed services by how they stand: ok, drifted (not where the desired state says), "
        "failed, unknown (host not online or not reported).",
        ["status"],
    )
    for bucket in Bucket:
        services.add_metric([bucket.value], _count(counts, bucket))
    return [by_lifecycle, services, *_config_figures(ctx)]


def _count(counts: Counts, bucket: Bucket) -> int:
    return int(getattr(counts, bucket.value))


def _config_figures(ctx: ServerContext) -> Iterable[Metric]:
    sync = ctx.config
    active = gauge(
        "drover_config_active_info",
        "The config revision in force (1), with where it comes from.",
        ["revision", "source"],
    )
    if sync.active is not None:
        active.add_metric([sync.active.revision, sync.source.description], 1)
    yield active
    applied = gauge(
        "drover_config_applied_timestamp_seconds", "When the revision in force was applied."
    )
    if sync.active_since is not None:
        applied.add_metric([], sync.active_since.timestamp())
    yield applied
    failing = gauge(
        "drover_config_failing",
        "1 while the newest revision (or the source) fails and an older one stays in force.",
    )
    failing.add_metric([], float(sync.last_error is not None))
    yield failing
