"""server.health: the one bucket each placement is counted in."""

from __future__ import annotations

import pytest

from drover.model.status import ServiceStatus, TargetStatus
from drover.server.health import Bucket, Counts, bucket

S, T = ServiceStatus, TargetStatus


@pytest.mark.parametrize(
    ("status", "target", "online", "expected"),
    [
        (S.RUNNING, T.RUNNING, True, Bucket.OK),
        (S.STARTING, T.RUNNING, True, Bucket.OK),  # on its way: not drift
        (S.STOPPED, T.STOPPED, True, Bucket.OK),
        (S.STOPPED, T.RUNNING, True, Bucket.DRIFTED),
        (S.RUNNING, T.STOPPED, True, Bucket.DRIFTED),
        (S.VANISHED, T.RUNNING, True, Bucket.DRIFTED),
        (S.FAILED, T.RUNNING, True, Bucket.FAILED),
        (S.FAILED, T.RUNNING, False, Bucket.FAILED),  # the last word from it was a failure
        (S.RUNNING, T.RUNNING, False, Bucket.UNKNOWN),  # its host is silent: we cannot say
        (None, T.RUNNING, True, Bucket.UNKNOWN),
        (S.UNKNOWN, T.STOPPED, True, Bucket.UNKNOWN),
    ],
)
def test_each_placement_falls_in_exactly_one_bucket(
    status: ServiceStatus | None, target: TargetStatus, online: bool, expected: Bucket
) -> None:
    assert bucket(status, target, online) is expected


def test_counts_add_up() -> None:
    counts = Counts()
    for which in (Bucket.OK, Bucket.OK, Bucket.FAILED):
        counts.add(which)
    assert (counts.ok, counts.failed, counts.total) == (2, 1, 3)
    assert counts.has(Bucket.FAILED) and not counts.has(Bucket.DRIFTED)
