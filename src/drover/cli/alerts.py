"""Alerts and schedules from the command line: what holds now, silences, and when each
schedule is next due with what came of its recent runs (through the API)."""

from __future__ import annotations

import json
import sys
from typing import Any

from drover.cli import options, render
from drover.cli.client import ApiClient


def listed(server_url: str, as_json: bool) -> None:
    found = ApiClient(server_url).get("/api/v1/alerts")
    if as_json:
        print(json.dumps(found, indent=2))
        return
    rows = [
        [
            a["rule"],
            a["key"],
            a["summary"],
            a["since"],
            f"silenced ({a['silenced_by']})"
            if a["silenced_by"]
            else ("sent" if a["notified_at"] else "pending"),
        ]
        for a in found
    ]
    columns = ["rule", "key", "summary", "since", "state"]
    render.console().print(render.titled_table("alerts", columns, rows))


def silence(
    server_url: str,
    rule: str | None,
    key: str | None,
    duration: str,
    reason: str,
    as_json: bool,
) -> None:
    body: dict[str, Any] = {
        "rule": rule,
        "key": key,
        "duration_s": int(options.duration(duration)),
        "reason": reason,
    }
    made = ApiClient(server_url).post("/api/v1/silences", body)
    if as_json:
        print(json.dumps(made, indent=2))
        return
    what = f"rule {rule}" if rule else "every rule"
    which = f", keys matching {key}" if key else ""
    print(f"silence {made['id']}: {what}{which}, until {made['expires_at']}", file=sys.stderr)
    print(made["id"])


def silences(server_url: str, everything: bool, as_json: bool) -> None:
    found = ApiClient(server_url).get("/api/v1/silences", **({"all": "true"} if everything else {}))
    if as_json:
        print(json.dumps(found, indent=2))
        return
    rows = [
        [
            s["id"],
            s["rule"] or "any",
            s["key"] or "any",
            s["created_by"],
            f"ended by {s['ended_by']}" if s["ended_at"] else f"until {s['expires_at']}",
            s["reason"],
        ]
        for s in found
    ]
    columns = ["id", "rule", "key", "by", "state", "reason"]
    render.console().print(render.titled_table("silences", columns, rows))


def unsilence(server_url: str, silence_id: str) -> None:
    ApiClient(server_url).delete(f"/api/v1/silences/{silence_id}")
    print(f"silence {silence_id} ended")


def schedules(server_url: str, as_json: bool) -> None:
    found = ApiClient(server_url).get("/api/v1/schedules")
    if as_json:
        print(json.dumps(found, indent=2))
        return
    rows = []
    for s in found:
        last = s["runs"][0] if s["runs"] else None
        said = f"{last['state']} ({last['due_at']})" if last else "-"
        missed = sum(1 for run in s["runs"] if run["state"] == "missed")
        rows.append(
            [
                s["name"],
                f"{s['cron']} {s['timezone']}",
                f"{s['kind']} {s['application']}",
                s["next_due"],
                said,
                str(missed),
            ]
        )
    columns = ["schedule", "cron", "action", "next due", "last run", "missed (recent)"]
    render.console().print(render.titled_table("schedules", columns, rows))
