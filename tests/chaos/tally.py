"""What really happened, counted: the system of record's outcome for every (action, host) set
against the executions the command itself journaled. The figures a chaos scenario reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from drover.ops.metrics import Metrics
from tests.chaos.conftest import Run, executions

# Outcomes that allow the command to have begun at most once and not to have ended: the
# agent's own word that it was cut short, or that it gave it up.
CUT_SHORT = {"interrupted", "failed", "cancelled"}


@dataclass
class Tally:
    actions: int = 0
    runs: int = 0  # (action, host) pairs on the record
    outcomes: Counter[str] = field(default_factory=Counter)
    executions: int = 0  # begins in the journal
    # Not final when everything has settled, or `succeeded` with no execution behind it.
    lost: list[Run] = field(default_factory=list)
    duplicated: list[Run] = field(default_factory=list)  # began more than once
    # An execution the record does not know, or one it got wrong: `succeeded` though the
    # command never ended, `expired` or `skipped` though it began.
    misreported: list[Run] = field(default_factory=list)
    cut_short: int = 0  # began, never ended (the journal), reported interrupted/failed/cancelled

    def counts(self) -> dict[str, Any]:
        return {
            "actions": self.actions,
            "runs": self.runs,
            "executions": self.executions,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "misreported": len(self.misreported),
            "cut_short_reported": self.cut_short,
            "outcomes": dict(self.outcomes),
        }

    def assert_nothing_lost_or_run_twice(self) -> None:
        assert (self.lost, self.duplicated, self.misreported) == ([], [], []), self.counts()


async def recorded_actions(http: httpx.AsyncClient, application: str) -> list[dict[str, Any]]:
    """Every action of `application` on the record, each with its hosts' outcomes."""
    listed = await http.get("/api/v1/actions", params={"application": application, "limit": 500})
    listed.raise_for_status()
    found = listed.json()
    assert len(found) < 500, "more actions than one page: page through them"
    return list(found)


def figure(metrics: Metrics, name: str) -> float:
    """The sum of a counter's samples across its labels, in an in-process server or agent."""
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    )


async def stalls(http: httpx.AsyncClient) -> int:
    """Subscriptions the server found stalled and made anew, in this life of it."""
    served = await http.get("/metrics")
    served.raise_for_status()
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(served.text)
            if family.name == "drover_consumer_stalls"
            for sample in family.samples
            if sample.name == "drover_consumer_stalls_total"
        )
    )


def tally(actions: list[dict[str, Any]], journal: Path) -> Tally:
    began, ended = executions(journal)
    counted = Tally(actions=len(actions), executions=sum(began.values()))
    on_record: set[Run] = set()
    for action in actions:
        for host in action["hosts"]:
            run: Run = (action["id"], host["host"])
            on_record.add(run)
            outcome = host["outcome"]
            counted.runs += 1
            counted.outcomes[outcome] += 1
            if began[run] > 1:
                counted.duplicated.append(run)
            claimed_unrun = outcome == "succeeded" and not began[run]
            unfinished_success = outcome == "succeeded" and not ended[run]
            never_run_but_began = outcome in ("expired", "skipped") and began[run] > 0
            if outcome in ("pending", "dispatched") or claimed_unrun:
                counted.lost.append(run)
            elif unfinished_success or never_run_but_began:
                counted.misreported.append(run)
            elif outcome in CUT_SHORT and began[run] and not ended[run]:
                counted.cut_short += 1
    counted.misreported += [run for run in began if run not in on_record]
    return counted
