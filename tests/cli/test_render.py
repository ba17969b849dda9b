"""Tables show what agents and users wrote exactly, even when it looks like Rich markup."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from drover.cli import render

MARKUP = "[/x] [bold]loud[/bold] [red]"


def shown(table: Table) -> str:
    console = Console(record=True, width=300, color_system=None)
    console.print(table)
    return console.export_text()


def action(output: str) -> dict[str, Any]:
    return {
        "id": "a1",
        "kind": "restart",
        "application": "[bold]shop",
        "services": ["web"],
        "state": "failed",
        "requested_by": "[/x]",
        "hosts": [
            {
                "host": "web-01",
                "outcome": "failed",
                "exit_code": 1,
                "duration_s": 0.5,
                "output": output,
            }
        ],
    }


def test_action_output_and_title_are_shown_literally() -> None:
    text = shown(render.action_table(action(MARKUP)))

    assert "action a1: restart [bold]shop (web) — failed" in text
    assert MARKUP in text


def test_host_values_are_shown_literally() -> None:
    host = {
        "host": "web-01",
        "online": False,
        "state": "[red]lost",
        "state_since": "2026-11-23T12:00:00Z",
        "services": [],
        "agent_version": "[/x]",
        "last_heartbeat": None,
        "desired_revision": "[bold]",
    }

    text = shown(render.hosts_table([host]))

    assert "[/x]" in text
    assert "[red]lost since 12:00:00" in text
    assert "[bold]" in text


def test_a_host_without_an_agent_shows_its_gateway_instead() -> None:
    host = {
        "host": "nas-01",
        "online": True,
        "state": "online",
        "state_since": "2026-11-23T12:00:00Z",
        "services": [],
        "kind": "ssh-target",
        "via": "gw-01",
        "agent_version": "0.9.0",
        "last_heartbeat": None,
        "desired_revision": None,
    }

    text = shown(render.hosts_table([host]))

    assert "ssh via gw-01" in text
    assert "0.9.0" not in text


def test_service_names_and_statuses_are_shown_literally() -> None:
    place = {
        "host": "[red]web",
        "host_online": False,
        "status": "[/x]",
        "drift": True,
        "pid": 7,
        "since": None,
    }
    apps = [
        {"name": "[bold]shop", "services": [{"name": "[/]", "target": "[i]", "hosts": [place]}]}
    ]

    text = shown(render.status_table(apps))

    for literal in ("[bold]shop", "[/]", "[red]web (offline)", "[/x] ≠ [i]"):
        assert literal in text


def test_unit_values_are_shown_literally_and_unassigned_and_vanished_say_so() -> None:
    base: dict[str, Any] = {"host": "web-01", "slice": "[red]", "properties": {}, "assigned_by": ""}
    units = [
        {
            **base,
            "unit": "a.service",
            "description": MARKUP,
            "application": None,
            "service": None,
            "vanished_since": None,
        },
        {
            **base,
            "unit": "b.service",
            "description": "",
            "application": "shop",
            "service": "b",
            "assigned_by": "discover[0]",
            "vanished_since": "2026-11-20T08:00:00Z",
        },
    ]

    text = shown(render.units_table(units))

    assert MARKUP in text and "[red]" in text
    assert "unassigned" in text
    assert "shop/b (vanished 2026-11-20 08:00)" in text and "discover[0]" in text
