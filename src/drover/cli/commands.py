"""What each CLI command does, apart from its argument parsing (cli/main.py).

The long-running commands check every value (cli/options.py) before they import what they run,
so that a mistake is reported at once, before the server's and the agent's imports.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.live import Live

from drover.cli import approvals, options, people, render
from drover.cli.client import ApiClient, CliError
from drover.cli.signals import run_until_signalled
from drover.ops import logging as drover_logging

if TYPE_CHECKING:
    from drover.agent.app import Agent
    from drover.agent.settings import AgentConfig
    from drover.ops.sdnotify import Notifier

log = logging.getLogger(__name__)


def dev(
    listen: str,
    data_dir: Path,
    config: Path,
    ref: str | None,
    host_id: str | None,
    level: str,
    leaf_port: int | None = None,
) -> None:
    level = options.log_level(level)
    host, port = options.listen_address(listen)
    options.config_source(config, ref)
    agent_host = options.host_id(host_id)
    options.ensure_listen_free(listen, host, port)
    state = options.data_dir(data_dir)
    from drover.cli.dev import run_dev

    drover_logging.configure(level)
    asyncio.run(
        run_until_signalled(
            lambda stop: run_dev(
                stop,
                listen_host=host,
                listen_port=port,
                data_dir=state,
                config_path=config.resolve(),
                config_ref=ref,
                host_id=agent_host,
                leaf_port=leaf_port,
            )
        )
    )


@dataclass(frozen=True)
class BusOptions:
    authority: Path = Path("/var/lib/drover/bus")
    ca: Path | None = None
    agent_urls: tuple[str, ...] = ()
    replicas: int = 1  # of each stream and bucket (--bus-replicas)


def server(
    nats: str,
    config: Path,
    ref: str | None,
    listen: str,
    database: str,
    poll: float,
    level: str,
    auth: people.AuthOptions | None = None,
    bus: BusOptions | None = None,
    log_format: str = "text",
    drain_grace: float = 5.0,
    canary_every: float = 300.0,
) -> None:
    level = options.log_level(level)
    host, port = options.listen_address(listen)
    options.config_source(config, ref)
    database = options.database_url(database)
    nats = options.nats_url(nats)
    auth_settings = people.auth_settings(auth or people.AuthOptions())
    bus = bus or BusOptions()
    for url in bus.agent_urls:
        options.nats_url(url)
    if bus.ca is not None and not bus.ca.is_file():
        raise CliError(f"--nats-ca {bus.ca}: no such file", 2)
    options.ensure_listen_free(listen, host, port)
    from drover.bus.connection import BusSettings
    from drover.bus.errors import ReplicasRefused
    from drover.bus.trust.authority import AuthorityError
    from drover.server.app import Server, ServerSettings
    from drover.server.enrollment import EnrollmentSettings

    settings = ServerSettings(
        config_path=config.resolve(),
        config_ref=ref,
        database_url=database,
        listen_host=host,
        listen_port=port,
        config_poll_interval=poll,
        bus=BusSettings(url=nats, name="drover-server", tls_ca=bus.ca),
        bus_replicas=bus.replicas,
        auth=auth_settings,
        bus_authority=bus.authority,
        enrollment=EnrollmentSettings(agent_nats_urls=bus.agent_urls),
        drain_grace=drain_grace,
        canary_every=canary_every,
    )
    drover_logging.configure(level, log_format)
    try:
        running = Server(settings)
    except AuthorityError as err:
        raise CliError(f"--bus-authority: {err}", 2) from None
    try:
        asyncio.run(run_until_signalled(running.run))
    except* ReplicasRefused as refused:  # nats-server can never keep that many copies
        raise CliError(f"{refused.exceptions[0]} (NATS at {nats})", 2) from None


def agent(flags: dict[str, object], config_file: Path | None) -> None:
    """`flags`: only those given on the command line; see agent/settings.py for the rest."""
    from drover.agent import settings as agent_settings
    from drover.agent.errors import SettingsError
    from drover.model.names import host_id_from_hostname

    def read() -> AgentConfig:
        return agent_settings.load(flags, os.environ, config_file)

    try:
        config = read()
    except SettingsError as err:
        raise CliError(str(err), 2) from err
    state = options.data_dir(config.data_dir, "--data-dir" if "data_dir" in flags else "data_dir")
    host = config.host_id or host_id_from_hostname()
    from drover.agent.app import Agent, AgentSettings
    from drover.bus.connection import BusSettings
    from drover.ops.sdnotify import Notifier

    notifier = Notifier.from_environ(os.environ)
    settings = AgentSettings(
        host_id=host,
        data_dir=state,
        bus=BusSettings(name=f"drover-agent-{host}"),
        nats_url=config.nats,
        heartbeat_interval=config.heartbeat_interval,
        drain_timeout=config.drain_timeout,
        systemd=config.systemd,
        systemd_bus_address=config.systemd_bus_address,
        systemd_root=config.systemd_root,
        metrics_listen=(
            agent_settings.listen_address(config.metrics_listen) if config.metrics_listen else None
        ),
        ssh_max_connections=config.ssh_max_connections,
    )
    drover_logging.configure(config.log_level, config.log_format)
    from drover.agent.enrollment import NotEnrolled

    try:
        running = Agent(settings)
    except NotEnrolled as err:
        raise CliError(str(err), 2) from None
    reload = AgentReload(running, config, read, notifier)
    asyncio.run(run_until_signalled(lambda stop: running.run(stop, notifier), on_reload=reload))


class AgentReload:
    """SIGHUP for the agent: read the settings file and environment again (the flags stay),
    apply what can change while running, log what needs a restart. A bad file changes nothing.
    systemd hears RELOADING=1, then READY=1 — once the agent has been ready."""

    def __init__(
        self,
        agent: Agent,
        config: AgentConfig,
        read: Callable[[], AgentConfig],
        notifier: Notifier,
    ) -> None:
        self.config = config  # in force: runtime keys as last reloaded, the rest as started
        self._agent = agent
        self._read = read
        self._notifier = notifier

    def __call__(self) -> None:
        from drover.agent.errors import SettingsError

        tell = self._agent.ready.is_set()
        if tell:
            self._notifier.reloading()
        status = f"agent {self._agent.settings.host_id} running"
        try:
            status += self._apply(self._read())
        except SettingsError as err:
            log.error("reload: %s; keeping the current settings", err)
            status += "; the last reload failed, see the log"
        finally:
            if tell:
                self._notifier.ready(status)

    def _apply(self, new: AgentConfig) -> str:
        """Apply `new`; return what to add to the status."""
        from drover.agent.settings import changes, runtime_part

        found = changes(self.config, new)
        now = [str(change) for change in found if change.at_runtime]
        later = [change.key for change in found if not change.at_runtime]
        self.config = runtime_part(self.config, new)
        logging.getLogger().setLevel(drover_logging.parse_level(self.config.log_level))
        self._agent.reload(
            replace(
                self._agent.settings,
                heartbeat_interval=self.config.heartbeat_interval,
                drain_timeout=self.config.drain_timeout,
            )
        )
        log.info("reload: %s", f"applied {', '.join(now)}" if now else "nothing to apply")
        if later:
            log.warning("reload: %s changed; takes effect on restart", ", ".join(later))
            return f"; restart to apply {', '.join(later)}"
        return ""


def status(server_url: str, as_json: bool) -> None:
    apps = ApiClient(server_url).get("/api/v1/applications")
    _show(apps, as_json, lambda: render.status_table(apps))


def hosts(server_url: str, as_json: bool) -> None:
    found = ApiClient(server_url).get("/api/v1/hosts")
    _show(found, as_json, lambda: render.hosts_table(found))


def units(server_url: str, host: str | None, state: str | None, as_json: bool) -> None:
    params = {k: v for k, v in (("host", host), ("state", state)) if v is not None}
    found = ApiClient(server_url).get("/api/v1/units", **params)
    _show(found, as_json, lambda: render.units_table(found))


def audit(
    server_url: str,
    as_json: bool,
    limit: int,
    *,
    actor: str | None,
    kind: str | None,
    subject: str | None,
    since: str | None,
) -> None:
    params: dict[str, Any] = {"limit": limit}
    params.update({k: v for k, v in (("actor", actor), ("kind", kind), ("subject", subject)) if v})
    if since is not None:
        back = timedelta(seconds=options.duration(since, "--since"))
        params["since"] = (datetime.now(UTC) - back).isoformat()
    found = ApiClient(server_url).get("/api/v1/audit", **params)
    _show(found, as_json, lambda: render.audit_table(found))


def config_status(server_url: str, as_json: bool) -> None:
    """The server's active revision and everything wrong; exit 1 if anything is."""
    found = ApiClient(server_url).get("/api/v1/config")
    if as_json:
        print(json.dumps(found, indent=2))
    else:
        print(f"source:   {found['source']}")
        if found["active_revision"]:
            print(f"active:   {found['active_revision']} (since {found['active_since']})")
        else:
            print("active:   none (no revision has validated yet)")
        error = found["last_error"]
        if error:
            print(f"rejected: {error['message']} at {error['at']}")
            for p in error["problems"]:
                print(f"  {p['file']}:{p['line']}:{p['column']}: {p['message']}")
        for p in found["discovery_problems"]:
            print(f"{p['file']}:{p['line']}:{p['column']}: {p['message']}")
    wrong = len(found["discovery_problems"]) + (1 if found["last_error"] else 0)
    if wrong:
        raise CliError(f"{wrong} problem(s) with the configuration", 1)


def host_decommission(host: str, server_url: str) -> None:
    ApiClient(server_url).delete(f"/api/v1/hosts/{host}")
    print(f"host {host} decommissioned")


def actions(server_url: str, as_json: bool, limit: int) -> None:
    found = ApiClient(server_url).get("/api/v1/actions", limit=limit)
    if as_json:
        print(json.dumps(found, indent=2))
        return
    out = render.console()
    for action in found:
        out.print(render.action_table(action))


def override_set(
    target: str,
    status: str,
    reason: str,
    host: str | None,
    duration: str,
    server_url: str,
    as_json: bool,
) -> None:
    application, service = options.action_target(target)
    if status not in ("running", "stopped"):
        raise CliError(f"--status {status!r}: expected running or stopped", 2)
    body: dict[str, Any] = {
        "application": application,
        "service": service,
        "host": host,
        "status": status,
        "reason": reason,
        "duration_s": options.duration(duration),
    }
    created = ApiClient(server_url).post("/api/v1/overrides", body)
    _show([created], as_json, lambda: render.overrides_table([created]))


def override_list(server_url: str, as_json: bool) -> None:
    found = ApiClient(server_url).get("/api/v1/overrides")
    _show(found, as_json, lambda: render.overrides_table(found))


def override_clear(override_id: str, server_url: str) -> None:
    ApiClient(server_url).delete(f"/api/v1/overrides/{override_id}")
    print(f"override {override_id} cleared")


ANSWER_GRACE_S = 300.0  # the server's default answer grace (server/orchestrator.py)
WAITING_FOR_APPROVAL = 3  # exit code of `drover action` for an action held for approval


@dataclass(frozen=True)
class Rollout:
    """How an action goes out, as given on the command line."""

    groups: list[str] = field(default_factory=list)
    labels: str | None = None
    batch: str | None = None
    pause: str | None = None
    health_gate: str | None = None
    max_failures: str | None = None
    host_timeout: str | None = None
    deadline: str = "10m"

    def body(self) -> dict[str, Any]:
        """The request's selection and strategy; the server checks the values."""
        from drover.server.errors import Unprocessable
        from drover.server.targeting import parse_labels

        strategy: dict[str, Any] = {}
        if self.batch is not None:
            strategy.update(_count_or_percent("--batch", self.batch, "batch_size", "batch_percent"))
        if self.max_failures is not None:
            strategy.update(
                _count_or_percent(
                    "--max-failures", self.max_failures, "max_failures", "max_failures_percent"
                )
            )
        for option, value, key in (
            ("--pause", self.pause, "pause_s"),
            ("--health-gate", self.health_gate, "health_gate_s"),
            ("--host-timeout", self.host_timeout, "host_timeout_s"),
        ):
            if value is not None:
                strategy[key] = options.duration(value, option)
        body: dict[str, Any] = {"deadline_s": options.duration(self.deadline, "--deadline")}
        if strategy:
            body["strategy"] = strategy
        if self.groups:
            body["groups"] = self.groups
        if self.labels is not None:
            try:
                body["labels"] = parse_labels(self.labels)
            except Unprocessable as err:
                raise CliError(f"--labels {self.labels!r}: {err.message}", 2) from err
        return body


def _count_or_percent(option: str, value: str, count: str, percent: str) -> dict[str, Any]:
    text = value.strip()
    number = text.removesuffix("%")
    if not number.isdigit():
        raise CliError(f"{option} {value!r}: expected a number of hosts (5) or a percent (25%)", 2)
    return {percent if text.endswith("%") else count: int(number)}


def action(
    kind: str,
    target: str,
    hosts: list[str],
    server_url: str,
    as_json: bool,
    timeout: float | None,
    rollout: Rollout | None = None,
    dry_run: bool = False,
) -> None:
    application, service = options.action_target(target)
    client = ApiClient(server_url)
    body: dict[str, Any] = {"application": application, **(rollout or Rollout()).body()}
    if service:
        body["service"] = service
    if hosts:
        body["hosts"] = hosts
    if dry_run:
        planned = client.post("/api/v1/actions/plan", body)
        _show(planned, as_json, lambda: render.plan_table(kind, planned))
        return
    created = client.post("/api/v1/actions", {"kind": kind, **body})
    if created["state"] == "pending-approval":
        # Following it would only wait: no host is sent anything before the approval.
        if as_json:
            print(json.dumps(created, indent=2))
        else:
            print(approvals.waiting(created))
        raise SystemExit(WAITING_FOR_APPROVAL)  # not an error, and not done either
    # By default follow it as long as it may take: to its deadline, and the answer grace.
    if timeout is None:
        timeout = body["deadline_s"] + ANSWER_GRACE_S
    final = _follow(client, created, timeout, live=not as_json)
    if as_json:
        print(json.dumps(final, indent=2))
    if final["state"] == "running":
        raise CliError(f"action {final['id']}: not every host answered within {timeout:.0f}s")
    if final["state"] != "succeeded":
        why = f": {final['halt_reason']}" if final.get("halt_reason") else ""
        state = final.get("rollout_state")
        shown = state if state and state != "running" else final["state"]
        raise CliError(f"action {final['id']} {shown}{why}")


def action_cancel(action_id: str, abort_running: bool, server_url: str, as_json: bool) -> None:
    body = {"abort_running": abort_running}
    cancelled = ApiClient(server_url).post(f"/api/v1/actions/{action_id}/cancel", body)
    _show(cancelled, as_json, lambda: render.action_table(cancelled))
    if not as_json:
        for line in render.cancel_outcome(cancelled):
            render.console().print(line, markup=False, highlight=False)


def _follow(client: ApiClient, action: dict[str, Any], timeout: float, live: bool) -> Any:
    """Poll the action until every host has answered (or the timeout), showing progress."""
    deadline = time.monotonic() + timeout
    console = render.console()
    with (
        Live(render.action_table(action), console=console, auto_refresh=False, transient=False)
        if live
        else _Quiet() as display
    ):
        while action["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            action = client.get(f"/api/v1/actions/{action['id']}")
            display.update(render.action_table(action), refresh=True)
    if live:
        console.print()
    return action


class _Quiet:
    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def update(self, *_: object, **__: object) -> None:
        return None


def config_check(path: Path, ref: str | None) -> None:
    from drover.config.errors import ConfigError, ConfigSourceError
    from drover.config.loader import load_snapshot
    from drover.config.source import FolderSource, GitSource

    try:
        source = GitSource(path, ref) if ref else FolderSource(path)
        config = load_snapshot(source.read())
    except ConfigSourceError as err:
        raise CliError(str(err), 2) from err
    except ConfigError as err:
        for problem in err.problems:
            print(problem)
        raise CliError(f"{len(err.problems)} problem(s) in {path}", 1) from err
    services = sum(len(a.services) for a in config.applications.values())
    rules = sum(len(a.discover) for a in config.applications.values())
    runnable = sum(len(a.commands) for a in config.applications.values())
    print(
        f"{path}: ok — {len(config.applications)} applications, {services} services, "
        f"{runnable} commands, {rules} discovery rules, {len(config.hosts)} hosts, "
        f"{len(config.groups)} groups "
        f"(revision {config.revision})"
    )


def _show(data: Any, as_json: bool, table: Any) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        render.console().print(table())
