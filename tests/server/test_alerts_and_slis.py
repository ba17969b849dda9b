"""What the alert conditions find in given facts: the action failure rate and its floor, and
stalls the server's consumers counted (ops/metrics.py) within a rule's window; and how each
final host result counts for the reliability indicator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drover.bus.connection import Bus, BusSettings
from drover.config.schema import AlertRule
from drover.ops.counters import Counters
from drover.ops.metrics import Metrics
from drover.server.alerts.alerter import Alerter
from drover.server.alerts.conditions import Facts, found
from drover.server.fleet import FleetView

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def facts(**given: object) -> Facts:
    fleet = FleetView(Bus(BusSettings(url="nats://127.0.0.1:1"), Counters()))
    values: dict[str, object] = {"outcomes": {}, "backlog": {}, "stalled": {}} | given
    return Facts(NOW, fleet, **values)  # type: ignore[arg-type]


def test_the_failure_rate_counts_failed_interrupted_and_expired_above_its_floor() -> None:
    rule = AlertRule(when="action_failure_rate", channels=["ops"], above=0.25, min_actions=4)
    few = {"failed": 3}
    assert found("r", rule, facts(outcomes={"r": few})) == []  # under min_actions
    fine = {"succeeded": 3, "failed": 1}
    assert found("r", rule, facts(outcomes={"r": fine})) == []  # 25 %: not above
    bad = {"succeeded": 5, "failed": 2, "interrupted": 1, "expired": 1, "cancelled": 1}
    [alert] = found("r", rule, facts(outcomes={"r": bad}))
    assert alert.key == "fleet"
    assert alert.summary == "4 of 10 host results failed in the last 1 h (40%, above 25%)"
    scoped = rule.model_copy(update={"applications": ["shop", "cart"]})
    assert found("r", scoped, facts(outcomes={"r": bad}))[0].key == "shop,cart"


def test_a_stall_counted_by_a_consumer_is_an_alert_for_the_rules_window() -> None:
    counters = Counters()
    metrics = Metrics("server", counters)
    bus = Bus(BusSettings(url="nats://127.0.0.1:1"), counters)
    alerter = Alerter(lambda: None, FleetView(bus), None, None, bus, metrics, counters, None)  # type: ignore[arg-type]
    alerter._count_stalls(NOW)
    assert alerter._stalled == {}
    metrics.consumer_stalls.labels("server-results").inc()
    alerter._count_stalls(NOW)
    rule = AlertRule(when="stall", channels=["ops"], window=600)
    stalled = dict(alerter._stalled)
    [alert] = found("s", rule, facts(stalled=stalled))
    assert alert.key == "server-results"
    assert alert.summary == "consumer server-results stalled at 12:00:00 and was recreated"
    later = Facts(NOW + timedelta(minutes=11), facts().fleet, {}, {}, stalled)
    assert found("s", rule, later) == []  # past its window
    alerter._count_stalls(NOW + timedelta(minutes=1))
    assert alerter._stalled == stalled


def test_each_final_host_result_counts_once_for_the_reliability_indicator() -> None:
    from drover.model.action import NO_ANSWER, SENT_NO_ANSWER, HostOutcome
    from drover.server.orchestrator import _how_it_ended
    from drover.store.actions import HostResult

    def result(outcome: HostOutcome, output: str = "") -> HostResult:
        return HostResult("h1", outcome, None, None, None, None, output)

    assert _how_it_ended(result(HostOutcome.SUCCEEDED)) == "completed"
    for known in (HostOutcome.FAILED, HostOutcome.INTERRUPTED, HostOutcome.CANCELLED):
        assert _how_it_ended(result(known, "exit 3")) == "identified"
    # Expired as the agent saw it (it says so), or with no answer at all.
    assert _how_it_ended(result(HostOutcome.EXPIRED, "deadline passed before it started")) == (
        "identified"
    )
    assert _how_it_ended(result(HostOutcome.EXPIRED, NO_ANSWER)) == "unexplained"
    assert _how_it_ended(result(HostOutcome.EXPIRED, SENT_NO_ANSWER)) == "unexplained"
