"""Rendering API answers for people: Rich tables, drift in red.

Every value in a table comes from agents or users (names, output, versions), so each is a `Text`:
Rich would otherwise read `[bold]` in a service's output as markup, or fail on `[/x]`.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {
    "running": "green",
    "stopped": "dim",
    "failed": "bold red",
    "starting": "yellow",
    "stopping": "yellow",
    "unknown": "magenta",
    "vanished": "bold magenta",
}
LIFECYCLE_STYLE = {"online": "green", "offline": "bold red", "lost": "bold magenta"}
# What the agent is doing about a drift, shown after it.
CONVERGENCE_NOTE = {
    "converging": " (restoring)",
    "failed-to-converge": " (gave up)",
    "observed": " (observe only)",
}
OUTCOME_STYLE = {
    "succeeded": "green",
    "failed": "bold red",
    "expired": "red",
    "interrupted": "red",
    "rejected": "red",
    "pending": "dim",
    "dispatched": "yellow",
    "skipped": "dim",
    "cancelled": "red",
}


def status_table(applications: list[dict[str, Any]]) -> Table:
    table = Table(title="applications", title_justify="left")
    for column in ("application", "service", "host", "status", "target", "pid", "since"):
        table.add_column(column)
    for app in applications:
        for svc in app["services"]:
            for place in svc["hosts"] or [None]:
                table.add_row(*_status_row(app, svc, place))
    return table


def _status_row(
    app: dict[str, Any], svc: dict[str, Any], place: dict[str, Any] | None
) -> list[Any]:
    name, service, target = _text(app["name"]), _text(svc["name"]), _text(svc["target"])
    if place is None:
        return [name, service, _text("-"), Text("no host", style="dim"), target, "", ""]
    status = place["status"] or "not reported"
    shown = _text(status, STATUS_STYLE.get(status, "magenta"))
    if place["drift"]:
        why = CONVERGENCE_NOTE.get(place.get("convergence") or "", "")
        shown = _text(f"{status} ≠ {svc['target']}{why}", "bold red")
    host = place["host"] if place["host_online"] else f"{place['host']} (offline)"
    return [
        name,
        service,
        _text(host),
        shown,
        target,
        _text(place["pid"] or ""),
        _text(_short_time(place["since"])),
    ]


def hosts_table(hosts: list[dict[str, Any]]) -> Table:
    table = Table(title="hosts", title_justify="left")
    for column in ("host", "state", "services", "agent", "last heartbeat", "config revision"):
        table.add_column(column)
    for h in hosts:
        running = sum(1 for s in h["services"] if s["status"] == "running")
        table.add_row(
            _text(h["host"]),
            _text(
                h["state"]
                if h["online"]
                else f"{h['state']} since {_short_time(h['state_since'])}",
                LIFECYCLE_STYLE.get(h["state"], ""),
            ),
            f"{running}/{len(h['services'])} running",
            # A host without an agent: the agent of `via` stands for it.
            _text(f"ssh via {h['via']}" if h.get("kind") == "ssh-target" else h["agent_version"]),
            _text(_short_time(h["last_heartbeat"])),
            _text((h["desired_revision"] or "-")[:12]),
        )
    return table


def units_table(units: list[dict[str, Any]]) -> Table:
    table = Table(title="units", title_justify="left")
    for column in ("host", "unit", "application", "by", "slice", "description"):
        table.add_column(column)
    for u in units:
        owner = f"{u['application']}/{u['service']}" if u["application"] else "unassigned"
        style = "" if u["application"] else "yellow"
        if u["vanished_since"]:
            owner += f" (vanished {u['vanished_since'].replace('T', ' ')[:16]})"
            style = "bold magenta"
        table.add_row(
            _text(u["host"]),
            _text(u["unit"]),
            _text(owner, style),
            _text(u["assigned_by"]),
            _text(u["slice"]),
            _text(u["description"]),
        )
    return table


def action_table(action: dict[str, Any]) -> Table:
    command = action.get("command")
    what = (
        f"command {action['application']} {command['name']}"
        if command
        else f"{action['kind']} {action['application']} "
        f"({', '.join(action['services']) or 'all services'})"
    )
    title = f"action {action['id']}: {what} — {action['state']}"
    rollout = action.get("rollout_state")
    if rollout and rollout not in ("running", action["state"]):
        title += f", {rollout}"
    if action.get("halt_reason"):
        title += f": {action['halt_reason']}"
    table = Table(title=_text(title, "table.title"), title_justify="left")
    batched = len({h.get("batch", 0) for h in action["hosts"]}) > 1
    for column in ("batch", "host", "outcome", "exit", "duration", "output")[0 if batched else 1 :]:
        table.add_column(column)
    for h in action["hosts"]:
        first = [_text(h.get("batch", 0) + 1)] if batched else []
        table.add_row(
            *first,
            _text(h["host"]),
            _text(h["outcome"], OUTCOME_STYLE.get(h["outcome"], "")),
            _text("" if h["exit_code"] is None else h["exit_code"]),
            "" if h["duration_s"] is None else f"{h['duration_s']:.2f}s",
            _text(h["output"]),
        )
    return table


def cancel_outcome(action: dict[str, Any]) -> list[str]:
    """What a cancel did, host by host, in a few lines (the action as the cancel answered)."""
    approval = action.get("approval") or {}
    if approval.get("state") == "cancelled":
        return [f"action {action['id']}: approval request withdrawn; nothing was sent"]
    cancel = action.get("cancel") or {}
    hosts = action["hosts"]
    who = f" by {cancel['requested_by']}" if cancel.get("requested_by") else ""
    lines = [f"action {action['id']}: cancelled{who}"]
    skipped = [h["host"] for h in hosts if h["outcome"] == "skipped" and not h["sent_at"]]
    aborts = [h for h in hosts if h.get("abort_requested_at")]
    sent = [h["host"] for h in aborts if h.get("abort_sent_at")]
    unsent = [h["host"] for h in aborts if not h.get("abort_sent_at")]
    running = [
        h["host"] for h in hosts if h["outcome"] in ("pending", "dispatched") and h["sent_at"]
    ]
    if skipped:
        lines.append(f"  {_hosts(skipped)} not yet sent: skipped, never run")
    if sent:
        lines.append(
            f"  abort sent to {_hosts(sent)}: a command is killed, services not yet reached are "
            "skipped, an action not yet begun never runs; each host's answer replaces "
            "`cancelled` with what it really did"
        )
    if unsent:
        lines.append(
            f"  abort for {_hosts(unsent)} not yet taken by the bus: the server sends it as "
            "soon as the bus is back"
        )
    if running and cancel.get("abort_running"):
        lines.append(f"  {_hosts(running)} still running: the abort is on its way")
    elif running:
        lines.append(
            f"  {_hosts(running)} already sent finish; "
            f"`drover action cancel {action['id']} --abort-running` aborts them"
        )
    if len(lines) == 1:
        lines.append("  every host had already answered: nothing changed")
    return lines


def _hosts(names: list[str], shown: int = 5) -> str:
    listed = ", ".join(names[:shown]) + (
        f" and {len(names) - shown} more" if len(names) > shown else ""
    )
    return f"{len(names)} host{'' if len(names) == 1 else 's'} ({listed})"


def audit_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="audit", title_justify="left")
    for column in ("when", "who", "what", "about", "from", "detail"):
        table.add_column(column)
    for e in entries:
        detail = ", ".join(f"{k}={v}" for k, v in e["detail"].items())
        table.add_row(
            _text(e["at"].replace("T", " ")[:19]),
            _text(e["actor"]),
            _text(e["kind"]),
            _text(e["subject"]),
            _text(e["source"]),
            _text(detail),
        )
    return table


def plan_table(kind: str, planned: dict[str, Any]) -> Group:
    services = ", ".join(planned["services"]) or "all services"
    hosts = sum(len(batch) for batch in planned["batches"])
    # The headline above the table, not its title: a narrow table would wrap it.
    headline = (
        f"dry run: {kind} {planned['application']} ({services}) on {hosts} hosts in "
        f"{len(planned['batches'])} batches — nothing is sent"
    )
    table = Table()
    table.add_column("batch")
    table.add_column("hosts")
    for number, batch in enumerate(planned["batches"], start=1):
        table.add_row(_text(number), _text(", ".join(batch)))
    return Group(_text(headline, "table.title"), table)


def _text(value: object, style: str = "") -> Text:
    """A value shown exactly as it is, never read as Rich markup."""
    return Text("" if value is None else str(value), style=style)


def overrides_table(overrides: list[dict[str, Any]]) -> Table:
    table = Table(title="overrides in force", title_justify="left")
    for column in ("id", "service", "host", "target", "until", "by"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", min_width=12)
    for o in overrides:
        table.add_row(
            _text(o["id"]),
            _text(f"{o['application']}/{o['service'] or '*'}"),
            _text(o["host"] or "*"),
            _text(o["status"], STATUS_STYLE.get(o["status"], "")),
            _text(o["expires_at"].replace("T", " ")[5:16]),
            _text(o["created_by"]),
            _text(o["reason"]),
        )
    return table


def _short_time(value: str | None) -> str:
    if not value:
        return ""
    return value.replace("T", " ")[11:19] if len(value) >= 19 else value


def console() -> Console:
    return Console(highlight=False)


def titled_table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table
