"""Four eyes on the command line: `drover approve`, `drover reject`, `drover approvals`, and
what `drover action` says about an action held for approval."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text

from drover.cli import render
from drover.cli.client import ApiClient

STATE_STYLE = {
    "pending": "yellow",
    "approved": "green",
    "rejected": "bold red",
    "expired": "red",
    "cancelled": "dim",
}


def approve(action_id: str, comment: str, server_url: str, as_json: bool) -> None:
    found = ApiClient(server_url).post(f"/api/v1/actions/{action_id}/approve", {"comment": comment})
    _print(found, as_json)


def reject(action_id: str, reason: str, server_url: str, as_json: bool) -> None:
    found = ApiClient(server_url).post(f"/api/v1/actions/{action_id}/reject", {"reason": reason})
    _print(found, as_json)


def inbox(server_url: str, state: str | None, as_json: bool) -> None:
    params = {"state": state} if state else {}
    found = ApiClient(server_url).get("/api/v1/approvals", **params)
    if as_json:
        print(json.dumps(found, indent=2))
    elif not found:
        print("nothing waits for your approval" if state is None else f"no {state} requests")
    else:
        title = "waiting for your approval" if state is None else f"{state} requests"
        render.console().print(approvals_table(found, title))


def _print(action: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(action, indent=2))
    else:
        print(outcome(action))


def outcome(action: dict[str, Any]) -> str:
    """One line on where an action's approval stands, e.g. after a vote."""
    approval = action["approval"]
    what = f"action {action['id']} ({action['kind']} {action['application']})"
    match approval["state"]:
        case "pending":
            return f"{what} waits for approval: {still_needed(approval)}"
        case "approved":
            return f"{what} approved by {', '.join(_approvers(approval))}: released, running now"
        case "rejected":
            return f"{what} rejected by {approval['decided_by']}: {approval['reason']}"
        case state:
            return f"{what} {state}: {approval['reason']}"


def waiting(action: dict[str, Any]) -> str:
    """What `drover action` says instead of following an action that waits for approval."""
    approval = action["approval"]
    return (
        f"action {action['id']} waits for approval until "
        f"{_when(approval['open_until'])}: {still_needed(approval)}. Nothing runs before. "
        f"An approver runs: drover approve {action['id']}; follow it with: drover actions"
    )


def still_needed(approval: dict[str, Any]) -> str:
    """`1 more approval (production changes, from ops-leads)`, for each policy short of it."""
    parts = []
    for policy in approval["policies"]:
        missing = policy["required"] - len(policy["approved_by"])
        if missing <= 0:
            continue
        groups = f", from {' or '.join(policy['from_groups'])}" if policy["from_groups"] else ""
        noun = "approval" if missing == 1 else "approvals"
        parts.append(f"{missing} more {noun} ({policy['name']}{groups})")
    return "; ".join(parts) or "no more approvals"


def approvals_table(approvals: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("action", "what", "requested by", "state", "needs", "open until"):
        table.add_column(column)
    for a in approvals:
        needs = (
            still_needed(a)
            if a["state"] == "pending"
            else (a["reason"] or ", ".join(_approvers(a)))
        )
        table.add_row(
            _text(a["action_id"]),
            _text(f"{a['kind']} {a['application']} ({a['environment']})"),
            _text(a["requested_by"]),
            _text(a["state"], STATE_STYLE.get(a["state"], "")),
            _text(needs),
            _text(_when(a["open_until"])),
        )
    return table


def _approvers(approval: dict[str, Any]) -> list[str]:
    return [v["approver"] for v in approval["votes"] if v["decision"] == "approve"]


def _when(iso: str) -> str:
    return iso.replace("T", " ")[:19]


def _text(value: object, style: str = "") -> Text:
    """A value shown as it is, never read as Rich markup (names and reasons come from people)."""
    return Text(str(value), style=style)
