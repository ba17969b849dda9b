"""Schedules and pre-approved windows in the config: each mistake one error at its place."""

from __future__ import annotations

import pytest

from drover.config.loader import load_files
from tests.config.test_loader import problems_of

APP = "applications:\n  shop:\n    hosts: [h1]\n    services:\n      web: {command: [x]}\n"


def test_a_schedule_and_a_window_load() -> None:
    config = load_files(
        {
            "a.yaml": (
                APP + "schedules:\n  n: {cron: '0 3 * * *', timezone: Europe/Zurich,"
                " kind: restart, application: shop}\n"
                "approvals:\n  - {kinds: [restart], preapproved: [{cron: '0 2 * * *',"
                " duration: 7200}]}\n"
            ).encode()
        },
        revision="r1",
    )
    assert config.schedules["n"].timezone == "Europe/Zurich"
    [policy] = config.approvals
    assert [w.duration for w in policy.preapproved] == [7200]


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        (
            "{cron: '61 * * * *', kind: restart, application: shop}",
            "a.yaml:7:13: schedules.n.cron: '61 * * * *' is not a valid cron expression",
        ),
        (
            "{cron: '* *', kind: restart, application: shop}",
            "a.yaml:7:13: schedules.n.cron: '* *': expected five fields",
        ),
        (
            "{cron: '0 3 * * *', timezone: Mars/Olympus, kind: restart, application: shop}",
            "a.yaml:7:36: schedules.n.timezone: 'Mars/Olympus' is not a time zone",
        ),
        (
            "{cron: '0 3 * * *', kind: restart, application: cart}",
            "a.yaml:7:54: schedules.n.application: unknown application 'cart'",
        ),
        (
            "{cron: '0 3 * * *', kind: command, application: shop}",
            "a.yaml:7:6: schedules.n: kind command needs 'command'",
        ),
    ],
)
def test_a_schedule_that_cannot_run_as_written_is_refused_at_its_place(
    schedule: str, problem: str
) -> None:
    [found] = problems_of({"a.yaml": f"{APP}schedules:\n  n: {schedule}\n".encode()})
    assert found.startswith(problem), found
