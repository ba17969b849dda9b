from datetime import UTC, datetime
from pathlib import Path

from drover.agent.ledger import Ledger
from drover.bus.messages import ActionResult
from drover.model.action import HostOutcome


def _result(action_id: str) -> ActionResult:
    return ActionResult(
        action_id=action_id,
        host="h1",
        outcome=HostOutcome.SUCCEEDED,
        exit_code=0,
        finished_at=datetime(2026, 1, 1, tzinfo=UTC),
        output="ok",
    )


def test_an_action_begun_and_finished_is_remembered_with_its_result(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.begin("a1")
    ledger.finish(_result("a1"))
    reopened = Ledger(tmp_path / "ledger.jsonl")
    entry = reopened.lookup("a1")
    assert entry is not None and entry.result == _result("a1")
    assert reopened.unfinished() == []


def test_an_action_begun_but_never_finished_is_unfinished_after_a_restart(tmp_path: Path) -> None:
    Ledger(tmp_path / "ledger.jsonl").begin("a2")
    reopened = Ledger(tmp_path / "ledger.jsonl")
    assert reopened.unfinished() == ["a2"]
    entry = reopened.lookup("a2")
    assert entry is not None and entry.result is None


def test_a_torn_last_line_is_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.begin("a1")
    ledger.finish(_result("a1"))
    with path.open("a") as f:
        f.write('{"id": "a3", "pha')
    reopened = Ledger(path)
    assert reopened.lookup("a1") is not None
    assert reopened.lookup("a3") is None


def test_an_unknown_action_is_not_in_the_ledger(tmp_path: Path) -> None:
    assert Ledger(tmp_path / "none.jsonl").lookup("zzz") is None


def test_a_record_after_a_torn_line_is_still_readable(tmp_path: Path) -> None:
    """Power cut mid-write, then the same action begun again and the agent dies once more:
    the second begin must not be glued to the torn line, or the action would run twice."""
    path = tmp_path / "ledger.jsonl"
    with path.open("w") as f:
        f.write('{"id": "a4", "pha')
    Ledger(path).begin("a4")
    assert Ledger(path).unfinished() == ["a4"]


def test_a_result_not_marked_sent_is_sent_by_the_next_life(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    for action_id in ("a1", "a2", "a3"):
        ledger.begin(action_id)
        ledger.finish(_result(action_id))
    ledger.sent("a1")
    ledger.sent("a3")
    assert [r.action_id for r in Ledger(path).unsent()] == ["a2"]
    ledger.sent("a2")
    assert Ledger(path).unsent() == []


def test_a_ledger_from_before_the_sent_marks_takes_its_results_as_sent(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.begin("old")
    ledger.finish(_result("old"))  # no mark: written by an agent that made none
    assert Ledger(path).unsent() == []
