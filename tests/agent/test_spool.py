"""The event spool keeps what the stream has not stored across an agent's lives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drover.agent import spool
from drover.agent.spool import EventSpool
from drover.bus.messages import ServiceState
from drover.model.status import ServiceStatus


def state(n: int) -> ServiceState:
    return ServiceState(
        host="h1",
        application="app",
        service=f"s{n}",
        provider="process",
        status=ServiceStatus.RUNNING,
        since=datetime(2026, 12, 2, tzinfo=UTC),
    )


def opened(path: Path, limit: int = 100) -> tuple[EventSpool, list[int]]:
    dropped: list[int] = []
    made = EventSpool(path, limit, lambda: dropped.append(1))
    made.load()
    return made, dropped


def test_what_was_not_sent_is_there_in_the_next_life_in_order_with_its_ids(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.spool"
    first, _ = opened(path)
    for n in range(5):
        first.add(f"life1.{n}", state(n))
    first.sent(2)
    first.close()

    second, _ = opened(path)
    assert [(i, s.service) for i, s in second.oldest(10)] == [
        ("life1.2", "s2"),
        ("life1.3", "s3"),
        ("life1.4", "s4"),
    ]
    assert len(path.read_text().splitlines()) == 3  # rewritten: only what is pending


def test_once_all_is_sent_the_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "events.spool"
    made, _ = opened(path)
    made.add("a", state(1))
    made.add("b", state(2))
    made.sent(2)
    assert path.read_text() == "" and len(made) == 0
    made.close()
    assert len(opened(path)[0]) == 0


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.spool"
    made, _ = opened(path)
    made.add("a", state(1))
    made.close()
    with path.open("a") as file:
        file.write('{"id": "b", "state": {"host": "h')  # the crash came mid-write
    again, _ = opened(path)
    assert [i for i, _ in again.oldest(10)] == ["a"]


def test_past_its_limit_the_oldest_go_counted_in_this_life_and_the_next(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.spool"
    made, dropped = opened(path, limit=3)
    for n in range(5):
        made.add(str(n), state(n))
    assert [i for i, _ in made.oldest(10)] == ["2", "3", "4"] and len(dropped) == 2
    made.close()
    smaller, dropped_then = opened(path, limit=2)
    assert [i for i, _ in smaller.oldest(10)] == ["3", "4"] and len(dropped_then) == 1


def test_a_long_life_that_never_empties_it_keeps_the_file_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "COMPACT_AFTER", 10)
    path = tmp_path / "events.spool"
    made, _ = opened(path)
    for n in range(30):
        made.add(str(n), state(n))
        made.add(f"{n}b", state(n))
        made.sent(1)
    # 90 lines were written; what is left is what is pending, and at most 10 more
    assert len(path.read_text().splitlines()) <= len(made) + 10 < 90
    made.close()
    assert [i for i, _ in opened(path)[0].oldest(100)] == [i for i, _ in made.oldest(100)]
