"""`drover run` and `drover output`: a command run on hosts, and its output, live or whole.

Live output comes as server-sent events; each line is printed once it is complete, after the
name of its host. A connection that drops is resumed where it was (Last-Event-ID), so no line
is lost or printed twice. The exit code says how the command went: 0 when it succeeded on
every host, 1 when it did not, 2 for a request the server refused (its reason is printed).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from drover.cli import approvals, sse
from drover.cli.client import ApiClient, CliError, httpx_module
from drover.cli.commands import WAITING_FOR_APPROVAL, Rollout

RESUME_ATTEMPTS = 10
RESUME_PAUSE = 1.0


def run(
    application: str,
    command: str,
    params: list[str],
    hosts: list[str],
    server_url: str,
    rollout: Rollout,
) -> None:
    client = ApiClient(server_url)
    body: dict[str, Any] = {
        "kind": "command",
        "application": application,
        "command": command,
        "params": parse_params(params),
        **rollout.body(),
    }
    if hosts:
        body["hosts"] = hosts
    created = client.post("/api/v1/actions", body)
    if created["state"] == "pending-approval":
        print(approvals.waiting(created))
        raise SystemExit(WAITING_FOR_APPROVAL)
    names = [h["host"] for h in created["hosts"]]
    _say(f"action {created['id']}: {command} on {len(names)} host(s): {', '.join(names)}")
    ends = follow(client, created["id"], None, Lines(sys.stdout, names))
    _conclude(created["id"], ends)


def output(action_id: str, hosts: list[str], follow_it: bool, server_url: str) -> None:
    client = ApiClient(server_url)
    action = client.get(f"/api/v1/actions/{action_id}")
    names = hosts or [h["host"] for h in action["hosts"]]
    if follow_it:
        ends = follow(client, action_id, hosts or None, Lines(sys.stdout, names))
        _conclude(action_id, ends)
        return
    if len(names) == 1:  # one host: its bytes exactly as the command wrote them
        with client.stream(f"/api/v1/actions/{action_id}/hosts/{names[0]}/output") as whole:
            for data in whole.iter_bytes():
                sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    lines = Lines(sys.stdout, names)
    for host in names:
        with client.stream(f"/api/v1/actions/{action_id}/hosts/{host}/output") as whole:
            for text in whole.iter_text():
                lines.feed(host, text)
        lines.end(host)


def parse_params(given: list[str]) -> dict[str, str]:
    """`NAME=VALUE` pairs; the server checks the values against the command's parameters."""
    params: dict[str, str] = {}
    for item in given:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise CliError(f"--param {item!r}: expected NAME=VALUE", 2)
        if name.strip() in params:
            raise CliError(f"--param {name.strip()!r} is given twice", 2)
        params[name.strip()] = value
    return params


@dataclass
class Lines:
    """Output of several hosts, a line at a time, each after its host's name."""

    out: TextIO
    hosts: list[str]
    partial: dict[str, str] = field(default_factory=dict)

    def feed(self, host: str, text: str) -> None:
        *complete, rest = (self.partial.pop(host, "") + text).split("\n")
        for line in complete:
            self._print(host, line)
        if rest:
            self.partial[host] = rest

    def end(self, host: str) -> None:
        if host in self.partial:
            self._print(host, self.partial.pop(host))

    def _print(self, host: str, line: str) -> None:
        width = max((len(h) for h in self.hosts), default=0)
        self.out.write(f"{host:<{width}} | {line}\n")
        self.out.flush()


def follow(
    client: ApiClient,
    action_id: str,
    hosts: list[str] | None,
    lines: Lines,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, dict[str, Any]]:
    """Print the action's output as it comes until every host has ended; how each ended."""
    ends: dict[str, dict[str, Any]] = {}
    last_id: str | None = None
    for _ in range(RESUME_ATTEMPTS):
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            with client.stream(
                f"/api/v1/actions/{action_id}/output", {"host": hosts or []}, headers
            ) as stream:
                for event in sse.events(stream.iter_lines()):
                    last_id = event.id or last_id
                    if _take(event, lines, ends):
                        return ends
        except httpx_module().TransportError:
            pass  # resumed below, from the last event seen
        sleep(RESUME_PAUSE)
    raise CliError(f"lost the output of action {action_id}; see it with: drover output {action_id}")


def _take(event: sse.Event, lines: Lines, ends: dict[str, dict[str, Any]]) -> bool:
    """Show one event; True once the stream is done."""
    if event.event == "done":
        return True
    data = json.loads(event.data)
    if event.event == "output":
        lines.feed(data["host"], data["text"])
    elif event.event == "end":
        lines.end(data["host"])
        ends[data["host"]] = data
    return False


def _conclude(action_id: str, ends: dict[str, dict[str, Any]]) -> None:
    """Say how each host ended; exit 1 unless every one succeeded."""
    failed = []
    for host, end in sorted(ends.items()):
        code = f", exit {end['exit_code']}" if end.get("exit_code") is not None else ""
        missing = f", {end['missing']} output chunks lost" if end.get("missing") else ""
        _say(f"{host}: {end['outcome']}{code}{missing}")
        if end["outcome"] != "succeeded":
            failed.append(host)
    if failed:
        raise CliError(f"action {action_id}: failed on {len(failed)} of {len(ends)} host(s)")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
