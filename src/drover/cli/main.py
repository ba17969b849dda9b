"""The `drover` command line."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from drover.cli import alerts, approvals, commands, enrollment, outposts, people, sim
from drover.cli.client import CliError

app = typer.Typer(
    name="drover",
    help="Application management for fleets of Linux servers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Validate a config repository; print its JSON Schema.")
action_app = typer.Typer(help="Act on an application's services.")
app.add_typer(config_app, name="config")
app.add_typer(action_app, name="action")
override_app = typer.Typer(help="Temporary targets for maintenance: set, list, clear.")
app.add_typer(override_app, name="override")
host_app = typer.Typer(help="A host's lifecycle: decommission one that is gone.")
app.add_typer(host_app, name="host")
user_app = typer.Typer(help="People who may use drover: add, list, remove (admins).")
app.add_typer(user_app, name="user")
token_app = typer.Typer(help="API tokens for the CLI and scripts: create, list, revoke.")
app.add_typer(token_app, name="token")
bus_app = typer.Typer(help="The bus authority: the keys every bus credential is made with.")
app.add_typer(bus_app, name="bus")

DEFAULT_SERVER = "http://127.0.0.1:8080"


class SystemdMode(StrEnum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


ServerOpt = Annotated[
    str, typer.Option("--server", envvar="DROVER_SERVER", help="drover server URL")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]
HostOpt = Annotated[list[str] | None, typer.Option("--host", help="only on this host (repeatable)")]
# The rollout options `drover action` and `drover run` share.
GroupOpt = Annotated[
    list[str] | None, typer.Option("--group", help="only hosts in this group; repeatable")
]
LabelsOpt = Annotated[
    str | None, typer.Option("--labels", help="only hosts with these: env=prod,dc=zrh")
]
BatchOpt = Annotated[
    str | None, typer.Option("--batch", help="hosts per batch: 5, or 25% (default: all)")
]
PauseOpt = Annotated[str | None, typer.Option("--pause", help="between batches: 30s")]
HealthGateOpt = Annotated[
    str | None,
    typer.Option("--health-gate", help="a batch's services must hold target this long"),
]
MaxFailuresOpt = Annotated[
    str | None,
    typer.Option("--max-failures", help="failed hosts tolerated: 2, or 10% (default 0)"),
]
HostTimeoutOpt = Annotated[
    str | None, typer.Option("--host-timeout", help="per host: 5m (default: deadline)")
]
DeadlineOpt = Annotated[str, typer.Option("--deadline", help="of the whole action")]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout", help="seconds to follow the action (default: its deadline, plus 5 min)"
    ),
]


@app.command()
def dev(
    listen: Annotated[str, typer.Option(help="HOST:PORT of the HTTP API")] = "127.0.0.1:8080",
    data_dir: Annotated[Path, typer.Option(help="state: NATS store, database, agent")] = Path(
        ".drover"
    ),
    config: Annotated[Path, typer.Option(help="config repository or folder")] = Path(
        "examples/config"
    ),
    ref: Annotated[str | None, typer.Option(help="Git ref to follow")] = None,
    host_id: Annotated[str | None, typer.Option(help="the local agent's host id")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
    leaf_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="take outposts' leaf node links on this port"),
    ] = None,
) -> None:
    """Run nats-server, the server and a local agent in one process (the embedded default)."""
    commands.dev(listen, data_dir, config, ref, host_id, log_level, leaf_port)


@app.command(name="sim")
def sim_command(
    agents: Annotated[int, typer.Option("--agents", min=1, help="how many hosts to simulate")],
    services: Annotated[
        int | None,
        typer.Option(
            "--services", min=1, max=100, help="services per host, in the file --config gets"
        ),
    ] = None,
    flap_rate: Annotated[
        float,
        typer.Option(
            "--flap-rate",
            min=0,
            help="services made to fail per second, over the whole simulation (each is "
            "started again by its agent: two state changes)",
        ),
    ] = 0.0,
    processes: Annotated[
        int, typer.Option(min=0, help="processes to run them in; 0: one per 2,500 hosts")
    ] = 0,
    data_dir: Annotated[
        Path, typer.Option(help="each host's enrollment and state, one folder per host")
    ] = Path(".drover/sim"),
    config: Annotated[
        Path | None,
        typer.Option(
            help="a config folder to write applications/sim.yaml into, placing the services "
            "on the simulated hosts"
        ),
    ] = None,
    prefix: Annotated[str, typer.Option(help="the hosts are PREFIX0, PREFIX1, ...")] = "sim-",
    heartbeat: Annotated[
        float, typer.Option(min=1, max=300, help="each host's heartbeat interval, seconds")
    ] = 10.0,
    nats: Annotated[
        str | None,
        typer.Option(help="NATS URL(s) to connect to; default: those enrollment gave the hosts"),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
) -> None:
    """Simulate hosts: the real agent, each with its own enrollment and NATS connection, on
    in-memory services; for load tests (enrolls with an admin's token)."""
    sim.sim(
        sim.Options(server, agents, services, flap_rate, processes, data_dir, config, prefix),
        heartbeat,
        nats,
    )


@app.command()
def server(
    nats: Annotated[
        str,
        typer.Option(help="NATS URL, or the URLs of a cluster's nodes separated by commas"),
    ] = "nats://127.0.0.1:4222",
    config: Annotated[Path, typer.Option(help="config repository or folder")] = Path("config"),
    ref: Annotated[str | None, typer.Option(help="Git ref to follow")] = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT of the HTTP API")] = "127.0.0.1:8080",
    database: Annotated[str, typer.Option(help="SQLAlchemy URL of the system of record")] = (
        "sqlite+aiosqlite:///drover.db"
    ),
    poll: Annotated[float, typer.Option(help="seconds between config polls")] = 10.0,
    drain_grace: Annotated[
        float,
        typer.Option(
            envvar="DROVER_DRAIN_GRACE",
            min=0,
            max=300,
            help="seconds a stopping server keeps serving with /healthz failing, for a "
            "balancer to take it out (0: none in front)",
        ),
    ] = 5.0,
    canary_every: Annotated[
        float,
        typer.Option(
            envvar="DROVER_CANARY_EVERY",
            min=0,
            max=86400,
            help="seconds between canary pings through the whole action path (0: none)",
        ),
    ] = 300.0,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
    log_format: Annotated[
        LogFormat, typer.Option(help="text, or json for log collectors")
    ] = LogFormat.TEXT,
    bus_authority: Annotated[
        Path, typer.Option(help="the bus authority's keys (drover bus init)")
    ] = Path("/var/lib/drover/bus"),
    nats_ca: Annotated[
        Path | None,
        typer.Option(help="CA of nats-server's TLS certificate (default: the system's CAs)"),
    ] = None,
    agent_nats_url: Annotated[
        list[str] | None,
        typer.Option(
            "--agent-nats-url",
            help="NATS URL agents are told when they enroll (repeatable; default: --nats)",
        ),
    ] = None,
    bus_replicas: Annotated[
        int,
        typer.Option(
            envvar="DROVER_BUS_REPLICAS",
            min=1,
            max=5,
            help="copies of each stream and bucket: 1 on one nats-server, 3 on a 3-node cluster",
        ),
    ] = 1,
    public_url: Annotated[
        str | None,
        typer.Option(
            envvar="DROVER_PUBLIC_URL",
            help="where people reach the server, e.g. https://drover.example.com (https: "
            "Secure cookies; the base of OIDC's redirect)",
        ),
    ] = None,
    oidc_issuer: Annotated[
        str | None, typer.Option(envvar="DROVER_OIDC_ISSUER", help="OIDC provider's issuer URL")
    ] = None,
    oidc_client_id: Annotated[
        str | None, typer.Option(envvar="DROVER_OIDC_CLIENT_ID", help="OIDC client id")
    ] = None,
    oidc_client_secret_file: Annotated[
        Path | None,
        typer.Option(
            envvar="DROVER_OIDC_CLIENT_SECRET_FILE", help="file holding the OIDC client secret"
        ),
    ] = None,
    oidc_username_claim: Annotated[
        str, typer.Option(help="id_token claim naming the user (else 'sub')")
    ] = "preferred_username",
    oidc_groups_claim: Annotated[
        str, typer.Option(help="id_token claim listing the user's groups")
    ] = "groups",
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="address of a reverse proxy whose X-Forwarded-For is believed (repeatable; "
            "default: none, the peer's own address counts)",
        ),
    ] = None,
) -> None:
    """Run the drover server."""
    auth = people.AuthOptions(
        public_url=public_url,
        oidc_issuer=oidc_issuer,
        oidc_client_id=oidc_client_id,
        oidc_client_secret_file=oidc_client_secret_file,
        oidc_username_claim=oidc_username_claim,
        oidc_groups_claim=oidc_groups_claim,
        trusted_proxies=tuple(trusted_proxy or ()),
    )
    bus = commands.BusOptions(bus_authority, nats_ca, tuple(agent_nats_url or ()), bus_replicas)
    commands.server(
        nats,
        config,
        ref,
        listen,
        database,
        poll,
        log_level,
        auth,
        bus,
        log_format.value,
        drain_grace,
        canary_every,
    )


AGENT_HELP = (
    "Run the drover agent of this host. Settings come from a TOML file, then the environment "
    "(DROVER_NATS, DROVER_HOST_ID, ...: DROVER_ and the key in upper case), then these flags, "
    "each overriding the one before. SIGHUP reads the file again."
)


agent_app = typer.Typer(help=AGENT_HELP)
app.add_typer(agent_app, name="agent")


@agent_app.callback(invoke_without_command=True)
def agent(
    ctx: typer.Context,
    nats: Annotated[
        str | None,
        typer.Option(
            help="NATS URL, or several separated by commas (default: those the server gave "
            "when the host enrolled)"
        ),
    ] = None,
    host_id: Annotated[str | None, typer.Option(help="default: the short host name")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="ledger, cached desired state, logs (default: /var/lib/drover)"),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR (default: INFO)")
    ] = None,
    systemd: Annotated[
        SystemdMode | None,
        typer.Option(help="manage systemd units: auto (if reachable), on, off (default: auto)"),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            help="TOML settings file (or $DROVER_AGENT_CONFIG; default: /etc/drover/agent.toml)"
        ),
    ] = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT to serve Prometheus metrics on (default: none)"),
    ] = None,
    log_format: Annotated[
        LogFormat | None, typer.Option(help="text, or json for log collectors (default: text)")
    ] = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    given = {
        "nats": nats,
        "host_id": host_id,
        "data_dir": data_dir,
        "log_level": log_level,
        "systemd": systemd.value if systemd else None,
        "metrics_listen": metrics_listen,
        "log_format": log_format.value if log_format else None,
    }
    commands.agent({key: value for key, value in given.items() if value is not None}, config_file)


OUTPOST_HELP = (
    "Run an outpost: the bus at a remote site, a leaf node of the hub's nats-server that the "
    "site's agents connect to, over one link that may drop for hours (docs/operations.md)."
)
outpost_app = typer.Typer(help=OUTPOST_HELP)
app.add_typer(outpost_app, name="outpost")


@outpost_app.callback(invoke_without_command=True)
def outpost(
    ctx: typer.Context,
    bundle: Annotated[
        Path, typer.Option(help="what `drover outpost init` made, copied here")
    ] = Path("/etc/drover/outpost"),
    hub: Annotated[
        str | None,
        typer.Option(help="the hub's leaf node URL(s), tls://HOST:7422, separated by commas"),
    ] = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT its agents connect to")] = "0.0.0.0:4222",
    data_dir: Annotated[Path, typer.Option(help="its working files")] = Path(
        "/var/lib/drover/outpost"
    ),
    tls_cert: Annotated[
        Path | None, typer.Option(help="its TLS certificate, for the names agents use")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="that certificate's key")] = None,
    tls_ca: Annotated[
        Path | None, typer.Option(help="the CA of that certificate (the one agents trust)")
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
    log_format: Annotated[
        LogFormat, typer.Option(help="text, or json for log collectors")
    ] = LogFormat.TEXT,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if hub is None or tls_cert is None or tls_key is None or tls_ca is None:
        missing = [
            flag
            for flag, value in (
                ("--hub", hub),
                ("--tls-cert", tls_cert),
                ("--tls-key", tls_key),
                ("--tls-ca", tls_ca),
            )
            if value is None
        ]
        raise CliError(f"drover outpost needs {', '.join(missing)}", 2)
    outposts.run(
        bundle, hub, listen, data_dir, (tls_cert, tls_key, tls_ca), log_level, log_format.value
    )


@outpost_app.command("init")
def outpost_init(
    name: Annotated[str, typer.Argument(help="the outpost's name, e.g. its site: zrh-branch")],
    out: Annotated[Path, typer.Option(help="where to write its bundle")],
    bus_authority: Annotated[
        Path, typer.Option(help="the bus authority's keys (drover bus init)")
    ] = Path("/var/lib/drover/bus"),
    hub_ca: Annotated[
        Path | None,
        typer.Option(help="CA of the hub's leaf node certificate (default: the system's CAs)"),
    ] = None,
) -> None:
    """Make an outpost's bundle, where the bus authority is: its credentials for the link to
    the hub, and what it needs to trust the hosts' credentials."""
    outposts.init(name, bus_authority, out, hub_ca)


@app.command()
def status(server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False) -> None:
    """Applications × hosts: what runs, what should, and where they differ."""
    commands.status(server, as_json)


@app.command()
def audit(
    actor: Annotated[str | None, typer.Option("--actor", help="who: a user, agent:<host>")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="e.g. action.requested, or a prefix: action.")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="an action or override id, a revision")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="how far back: 90s, 2h, 7d")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """The audit trail, newest first: who did what, when, from where."""
    commands.audit(server, as_json, limit, actor=actor, kind=kind, subject=subject, since=since)


class UnitState(StrEnum):
    assigned = "assigned"
    unassigned = "unassigned"
    vanished = "vanished"


@app.command()
def units(
    host: Annotated[str | None, typer.Option("--host", help="only this host")] = None,
    state: Annotated[UnitState | None, typer.Option("--state", help="only these")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Every systemd unit on the hosts, and the application it belongs to (or none)."""
    commands.units(server, host, state.value if state else None, as_json)


@host_app.command("decommission")
def host_decommission(
    host: Annotated[str, typer.Argument(metavar="HOST")], server: ServerOpt = DEFAULT_SERVER
) -> None:
    """Remove a host that is offline or lost from the fleet, for good (the audit keeps it)."""
    commands.host_decommission(host, server)


@agent_app.command("enroll")
def agent_enroll(
    server: Annotated[str, typer.Option("--server", help="the drover server's URL")],
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="DROVER_ENROLL_TOKEN",
            help="a one-time token (drover hosts token create); without: wait for approval",
        ),
    ] = None,
    host_id: Annotated[str | None, typer.Option(help="default: the short host name")] = None,
    data_dir: Annotated[Path, typer.Option(help="where the agent keeps its state")] = Path(
        "/var/lib/drover"
    ),
    wait: Annotated[str, typer.Option(help="how long to wait for an approval")] = "10m",
    ca_file: Annotated[
        Path | None, typer.Option(help="the CA of the server's HTTPS certificate")
    ] = None,
) -> None:
    """Enroll this host: make its key (which never leaves it) and get its bus credentials."""
    enrollment.agent_enroll(server, token, host_id, data_dir, wait, ca_file)


hosts_app = typer.Typer(
    help="The hosts of the fleet; enrolling them on the bus (tokens, approvals), revoking them."
)
app.add_typer(hosts_app, name="hosts")
hosts_token_app = typer.Typer(help="One-time tokens hosts enroll with: create, list.")
hosts_app.add_typer(hosts_token_app, name="token")


@hosts_app.callback(invoke_without_command=True)
def hosts(ctx: typer.Context, server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False) -> None:
    """The hosts of the fleet and whether their agents are alive."""
    if ctx.invoked_subcommand is None:
        commands.hosts(server, as_json)


@hosts_token_app.command("create")
def hosts_token_create(
    expires: Annotated[str, typer.Option(help="how long it may be used: 30m, 4h, 2d")] = "1h",
    host: Annotated[str | None, typer.Option(help="only this host may use it")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """A one-time enrollment token; its secret is printed this once."""
    enrollment.token_create(server, expires, host, as_json)


@hosts_token_app.command("list")
def hosts_token_list(server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False) -> None:
    """Enrollment tokens, used or not (never their secrets)."""
    enrollment.token_list(server, as_json)


class KeyStateOpt(StrEnum):
    pending = "pending"
    enrolled = "enrolled"
    rejected = "rejected"
    revoked = "revoked"


@hosts_app.command("keys")
def hosts_keys(
    state: Annotated[KeyStateOpt | None, typer.Option(help="only keys in this state")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Hosts' bus keys: requests waiting for approval, enrolled, rejected, revoked."""
    enrollment.keys(server, state.value if state else None, as_json)


HostArg = Annotated[str, typer.Argument(metavar="HOST")]
KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="the key the host printed (U…)")]


@hosts_app.command("approve")
def hosts_approve(host: HostArg, key: KeyArg, server: ServerOpt = DEFAULT_SERVER) -> None:
    """Enroll a host that asked without a token, once its key matches what it printed."""
    enrollment.approve(server, host, key)


@hosts_app.command("reject")
def hosts_reject(host: HostArg, key: KeyArg, server: ServerOpt = DEFAULT_SERVER) -> None:
    """Refuse a host's enrollment request."""
    enrollment.reject(server, host, key)


@hosts_app.command("revoke")
def hosts_revoke(host: HostArg, server: ServerOpt = DEFAULT_SERVER) -> None:
    """Cut a host off the bus at once; it may enroll again with a token or an approval."""
    enrollment.revoke(server, host)


alerts_app = typer.Typer(
    help="Alerts the config's rules find now; silences that hold them back for a while."
)
app.add_typer(alerts_app, name="alerts")


@alerts_app.callback(invoke_without_command=True)
def alerts_list(
    ctx: typer.Context, server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False
) -> None:
    """The alerts holding now: sent, pending their rule's `after`, or silenced."""
    if ctx.invoked_subcommand is None:
        alerts.listed(server, as_json)


@alerts_app.command("silence")
def alerts_silence(
    duration: Annotated[str, typer.Option("--for", help="how long: 30m, 4h, 2d")],
    reason: Annotated[str, typer.Option(help="why, for the record")],
    rule: Annotated[str | None, typer.Option(help="only this rule's alerts")] = None,
    key: Annotated[
        str | None, typer.Option(help="only alerts whose key matches this glob: web-*, h1/shop/*")
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Hold back matching alerts until the silence expires (admin); prints its id."""
    alerts.silence(server, rule, key, duration, reason, as_json)


@alerts_app.command("silences")
def alerts_silences(
    everything: Annotated[bool, typer.Option("--all", help="ended and expired too")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Silences in force (or all of them)."""
    alerts.silences(server, everything, as_json)


@alerts_app.command("unsilence")
def alerts_unsilence(
    silence_id: Annotated[str, typer.Argument(metavar="ID")], server: ServerOpt = DEFAULT_SERVER
) -> None:
    """End a silence before it expires (admin)."""
    alerts.unsilence(server, silence_id)


@app.command("schedules")
def schedules_list(server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False) -> None:
    """The config's schedules: when each is next due, and its recent runs (missed ones too)."""
    alerts.schedules(server, as_json)


@bus_app.command("init")
def bus_init(
    dir: Annotated[Path, typer.Option("--dir", help="where to keep the keys")] = Path(
        "/var/lib/drover/bus"
    ),
) -> None:
    """Make the bus authority (operator, accounts, the action signing key) and the part of
    nats-server's config that trusts it."""
    enrollment.bus_init(dir)


@app.command()
def actions(
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
) -> None:
    """Recent actions and their per-host results."""
    commands.actions(server, as_json, limit)


def _action(kind: str) -> Any:
    def command(
        target: Annotated[str, typer.Argument(metavar="APP[/SERVICE]")],
        host: HostOpt = None,
        group: GroupOpt = None,
        labels: LabelsOpt = None,
        batch: BatchOpt = None,
        pause: PauseOpt = None,
        health_gate: HealthGateOpt = None,
        max_failures: MaxFailuresOpt = None,
        host_timeout: HostTimeoutOpt = None,
        deadline: DeadlineOpt = "10m",
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="show the batches; run nothing")
        ] = False,
        server: ServerOpt = DEFAULT_SERVER,
        as_json: JsonOpt = False,
        timeout: TimeoutOpt = None,
    ) -> None:
        rollout = commands.Rollout(
            groups=group or [],
            labels=labels,
            batch=batch,
            pause=pause,
            health_gate=health_gate,
            max_failures=max_failures,
            host_timeout=host_timeout,
            deadline=deadline,
        )
        commands.action(
            kind, target, host or [], server, as_json, timeout, rollout, dry_run=dry_run
        )

    command.__doc__ = (
        f"{kind.capitalize()} an application's services, at once or in batches; follow every "
        "host until it answers."
    )
    return command


@action_app.command("cancel")
def action_cancel(
    action_id: Annotated[str, typer.Argument(metavar="ID")],
    abort_running: Annotated[
        bool,
        typer.Option(
            "--abort-running",
            help="abort the hosts already sent: a command is killed, services not yet reached "
            "are skipped, an action not yet begun never runs (also after a plain cancel)",
        ),
    ] = False,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a rollout: hosts not yet sent are skipped; running ones finish, or are aborted."""
    commands.action_cancel(action_id, abort_running, server, as_json)


for _kind in ("restart", "start", "stop", "ping"):
    action_app.command(_kind)(_action(_kind))


@app.command(name="run")
def run_command(
    application: Annotated[str, typer.Argument(metavar="APP")],
    command: Annotated[str, typer.Argument(metavar="COMMAND")],
    param: Annotated[
        list[str] | None, typer.Option("--param", help="NAME=VALUE (repeatable)")
    ] = None,
    host: HostOpt = None,
    group: GroupOpt = None,
    labels: LabelsOpt = None,
    batch: BatchOpt = None,
    pause: PauseOpt = None,
    health_gate: HealthGateOpt = None,
    max_failures: MaxFailuresOpt = None,
    host_timeout: HostTimeoutOpt = None,
    deadline: DeadlineOpt = "10m",
    server: ServerOpt = DEFAULT_SERVER,
) -> None:
    """Run one of an application's commands on its hosts and follow its output, line by line
    after each host's name. Exit 1 if it failed on any host."""
    from drover.cli import jobs

    rollout = commands.Rollout(
        groups=group or [],
        labels=labels,
        batch=batch,
        pause=pause,
        health_gate=health_gate,
        max_failures=max_failures,
        host_timeout=host_timeout,
        deadline=deadline,
    )
    jobs.run(application, command, param or [], host or [], server, rollout)


@app.command()
def output(
    action_id: Annotated[str, typer.Argument(metavar="ID")],
    host: HostOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="live, until every host has ended")
    ] = False,
    server: ServerOpt = DEFAULT_SERVER,
) -> None:
    """A command's output: whole as stored so far (one host: its exact bytes), or followed live."""
    from drover.cli import jobs

    jobs.output(action_id, host or [], follow, server)


@app.command()
def approve(
    action_id: Annotated[str, typer.Argument(metavar="ID")],
    comment: Annotated[str, typer.Option("--comment", help="shown with your approval")] = "",
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Approve an action held for approval (four eyes); the last approval releases it."""
    approvals.approve(action_id, comment, server, as_json)


@app.command()
def reject(
    action_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option("--reason", help="why not: everyone sees it")],
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Reject an action held for approval: it never runs."""
    approvals.reject(action_id, reason, server, as_json)


class ApprovalState(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    expired = "expired"
    cancelled = "cancelled"


@app.command("approvals")
def approvals_inbox(
    state: Annotated[
        ApprovalState | None,
        typer.Option("--state", help="every request in this state (default: your inbox)"),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Actions waiting for your approval; or every request in a state."""
    approvals.inbox(server, state.value if state else None, as_json)


@override_app.command("set")
def override_set(
    target: Annotated[str, typer.Argument(metavar="APP[/SERVICE]")],
    status: Annotated[str, typer.Option("--status", help="running or stopped")],
    reason: Annotated[str, typer.Option("--reason", help="why: everyone sees it")],
    host: Annotated[str | None, typer.Option("--host", help="only on this host")] = None,
    duration: Annotated[str, typer.Option("--for", help="how long: 90s, 30m, 4h, 2d")] = "4h",
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Hold services at a target until the override expires or is cleared."""
    commands.override_set(target, status, reason, host, duration, server, as_json)


@override_app.command("list")
def override_list(server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False) -> None:
    """The overrides in force."""
    commands.override_list(server, as_json)


@override_app.command("clear")
def override_clear(
    override_id: Annotated[str, typer.Argument(metavar="ID")], server: ServerOpt = DEFAULT_SERVER
) -> None:
    """End an override now."""
    commands.override_clear(override_id, server)


@config_app.command("check")
def config_check(
    path: Annotated[Path, typer.Argument(help="config repository or folder")],
    ref: Annotated[str | None, typer.Option(help="Git ref (default: the checkout's files)")] = None,
) -> None:
    """Validate a config checkout: every error with file:line:col; non-zero exit if any."""
    commands.config_check(path, ref)


@config_app.command("status")
def config_status(server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False) -> None:
    """The server's active revision, a rejected one, and discovery rules that match nothing."""
    commands.config_status(server, as_json)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of config files (for editors)."""
    from drover.config.loader import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from stdin, not a prompt")
]
ExpiresOpt = Annotated[
    int, typer.Option("--expires-in", min=1, max=3650, help="days until the token expires")
]


@app.command()
def login(
    server: ServerOpt = DEFAULT_SERVER,
    name: Annotated[str | None, typer.Option("--name", help="default: your login name")] = None,
    password_stdin: PasswordStdinOpt = False,
    expires_in: ExpiresOpt = 30,
) -> None:
    """Sign in with your password; keeps an API token for the next commands (in
    $DROVER_TOKEN_FILE, else ~/.config/drover/token, readable by you only)."""
    people.login(server, name, password_stdin, expires_in)


@app.command()
def whoami(server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False) -> None:
    """Who the server takes you for, your groups and what you may do."""
    people.whoami(server, as_json)


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    role: Annotated[
        str | None, typer.Option("--role", help="viewer, operator, approver or admin")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope", help="limit the role: app=GLOB,env=GLOB (repeatable; default: all)"
        ),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="a group of the config's access: (repeatable)"),
    ] = None,
    password_stdin: PasswordStdinOpt = False,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="write to this database directly, without a server (the first admin)",
        ),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
) -> None:
    """Add a user; with --password-stdin it may sign in with a password, else with tokens."""
    people.user_add(server, name, role, scope or [], group or [], password_stdin, database)


@user_app.command("passwd")
def user_passwd(
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="default: you")] = None,
    password_stdin: PasswordStdinOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
) -> None:
    """Set your own password (the current one, then the new one). Until you do, approvals made
    with a password an admin set for you do not count."""
    people.user_passwd(server, name, password_stdin)


@user_app.command("list")
def user_list(server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False) -> None:
    """Every user, with grants and groups."""
    people.user_list(server, as_json)


@user_app.command("remove")
def user_remove(
    name: Annotated[str, typer.Argument(metavar="NAME")], server: ServerOpt = DEFAULT_SERVER
) -> None:
    """Remove a user with its tokens and sessions (the audit keeps what they did)."""
    people.user_remove(server, name)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="what it is for")] = "cli",
    expires_in: ExpiresOpt = 90,
    user: Annotated[str | None, typer.Option("--user", help="for another user (admins)")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Make an API token and print its secret, this once."""
    people.token_create(server, name, expires_in, user, as_json)


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option("--user", help="another user's (admins)")] = None,
    everyone: Annotated[bool, typer.Option("--all", help="everyone's (admins)")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    as_json: JsonOpt = False,
) -> None:
    """Your tokens (never their secrets), revoked ones too."""
    people.token_list(server, user, everyone, as_json)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID")], server: ServerOpt = DEFAULT_SERVER
) -> None:
    """Revoke a token: it stops working at once."""
    people.token_revoke(server, token_id)


@app.command()
def version() -> None:
    """Version, commit and build time."""
    from drover.ops.buildinfo import build_info

    info = build_info()
    typer.echo(f"drover {info.version} (commit {info.commit[:12]}, built {info.build_time})")


def run() -> None:
    try:
        app()
    except CliError as err:
        typer.secho(f"error: {err.message}", err=True, fg="red")
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
