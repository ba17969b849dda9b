"""Alert rules and channels in the config: each mistake one error at its place."""

from __future__ import annotations

import pytest

from drover.config.loader import load_files
from tests.config.test_loader import problems_of

CHANNELS = (
    "channels:\n"
    "  ops: {webhook: {url: 'https://hooks.example.com/x'}}\n"
    "  mail: {smtp: {host: smtp.example.com, sender: d@example.com, to: [ops@example.com]}}\n"
)


def test_rules_and_channels_from_several_files_are_merged() -> None:
    config = load_files(
        {
            "channels.yaml": CHANNELS.encode(),
            "alerts.yaml": b"alerts:\n  lost: {when: host_lost, channels: [ops, mail]}\n",
        },
        revision="r1",
    )
    assert config.alerts["lost"].renotify == 4 * 3600
    assert set(config.channels) == {"ops", "mail"}


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (
            "{when: host_lost, channels: [pager]}",
            "a.yaml:5:35: alerts.r.channels[0]: unknown channel 'pager'",
        ),
        (
            "{when: host_lost, channels: [ops], stream: X}",
            "a.yaml:5:6: alerts.r: 'stream' not used by host_lost",
        ),
        (
            "{when: stream_backlog, channels: [ops]}",
            "a.yaml:5:6: alerts.r: stream_backlog needs 'above', 'stream'",
        ),
        (
            "{when: action_failure_rate, channels: [ops], above: 20}",
            "a.yaml:5:6: alerts.r: action_failure_rate: 'above' is a share, from 0 to 1",
        ),
        (
            "{when: disk_full, channels: [ops]}",
            "a.yaml:5:13: alerts.r.when: must be one of 'host_lost', 'service_failed'",
        ),
    ],
)
def test_a_rule_that_cannot_be_checked_as_written_is_refused_at_its_place(
    rule: str, problem: str
) -> None:
    text = f"{CHANNELS}alerts:\n  r: {rule}\n"
    [found] = problems_of({"a.yaml": text.encode()})
    assert found.startswith(problem), found


def test_a_channel_is_one_kind() -> None:
    [found] = problems_of({"a.yaml": b"channels:\n  x: {}\n"})
    assert found == "a.yaml:2:6: channels.x: a channel is one of 'webhook' or 'smtp'"
