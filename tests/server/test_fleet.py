"""The fleet's picture, once a large replay has loaded it, is moved out of the cycle
collector's way (gc.freeze): a full collection over it stopped the server for 1.7 s at
10,000 hosts × 20 services. A small fleet is left as it is."""

from __future__ import annotations

import gc

import pytest

from drover.bus import subjects
from drover.bus.connection import Bus, BusSettings
from drover.ops.counters import Counters
from drover.server.fleet import FREEZE_FROM, FleetView


@pytest.mark.parametrize(("entries", "frozen"), [(FREEZE_FROM - 1, 0), (FREEZE_FROM, 1)])
def test_a_large_replay_freezes_the_picture_and_a_small_one_does_not(
    entries: int, frozen: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    freezes: list[None] = []
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append(None))
    fleet = FleetView(Bus(BusSettings(url="nats://127.0.0.1:1"), Counters()))

    fleet._prune({subjects.host_key(f"h{i}") for i in range(entries)})

    assert len(freezes) == frozen
