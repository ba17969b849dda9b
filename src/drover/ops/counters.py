"""Named counters: what a loop dropped, retried or failed, readable by tests, /info and
/metrics (ops/metrics.py exports each under a name of its own)."""

from __future__ import annotations

from collections import Counter

# Every counter drover keeps, with what it counts: /metrics exports these from zero, so the
# first failure is an increase that an alert sees. `loop_errors.<loop>` are counted besides.
COUNTED = {
    "bus.connect_failures": "First connects to NATS that failed (and were retried).",
    "bus.disconnects": "Times the NATS connection was lost.",
    "bus.reconnects": "Times the NATS connection came back.",
    "bus.reopens": "Times the NATS client gave up its connection and drover made a new one.",
    "bus.errors": "Errors the NATS client reported asynchronously.",
    "bus.refused": "Operations nats-server refused (permissions or authorization).",
    "server.dispatch_failures": "Action dispatches to a host that failed and will be retried.",
    "server.abort_failures": "Aborts sent to a host that failed and will be retried.",
    "server.rollout_errors": "Errors while advancing a rollout (retried).",
    "server.refused_by_agents": "Requests an agent refused (signature, host), audited.",
    "server.results_unstorable": "Results that could not be stored (acknowledged, logged).",
    "server.malformed_messages": "Messages from agents that did not decode (dropped).",
    "server.alert_news_sent": "Alert news (firing, repeat, resolved) a channel took.",
    "server.alert_send_failures": "Rounds of alert news a channel did not take (kept, retried).",
    "server.alert_news_dropped": "Alert news dropped: over 1,000 waited for a failing channel.",
    "agent.refused_requests": "Action requests refused: unsigned, forged or not for this host.",
    "agent.refused_desired": "Desired states refused: unsigned, forged or older than in force.",
    "agent.foreign_desired": "Desired states addressed to another host (refused).",
    "agent.malformed_messages": "Messages from the server that did not decode (dropped).",
    "agent.events_dropped": "State changes dropped unsent: over 10,000 waited for the bus.",
    "agent.output_publish_failures": "Chunks of command output that could not be published.",
}


class Counters:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def inc(self, name: str, amount: int = 1) -> None:
        self._counts[name] += amount

    def get(self, name: str) -> int:
        return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))
