from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drover.model.action import ActionKind, ActionState, HostOutcome
from drover.model.rollout import CancelRequest, RolloutState
from drover.model.strategy import Strategy
from drover.store.actions import Action, ActionStore, HostResult

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _pending(host: str, batch: int = 0, released: bool = True) -> HostResult:
    return HostResult(
        host, HostOutcome.PENDING, None, None, None, None, "", batch, T0 if released else None
    )


def _action(action_id: str = "a1", hosts: tuple[str, ...] = ("h1", "h2")) -> Action:
    return Action(
        id=action_id,
        kind=ActionKind.RESTART,
        application="shop",
        services=["web"],
        requested_by="alice",
        created_at=T0,
        deadline=T0 + timedelta(minutes=10),
        hosts=[_pending(h) for h in hosts],
    )


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ActionStore]:
    store = await ActionStore.open(database_url)
    yield store
    await store.close()


async def test_an_action_is_stored_with_a_pending_row_per_host(store: ActionStore) -> None:
    await store.create(_action())
    assert await store.get("a1") == _action()
    assert [(d.action_id, d.host, d.kind, d.services) for d in await store.undispatched()] == [
        ("a1", "h1", ActionKind.RESTART, ["web"]),
        ("a1", "h2", ActionKind.RESTART, ["web"]),
    ]
    await store.close()


async def test_a_result_is_recorded_once_and_a_second_is_ignored(store: ActionStore) -> None:
    await store.create(_action())
    await store.mark_dispatched([("a1", "h1")], T0)
    ok = HostResult("h1", HostOutcome.SUCCEEDED, 0, T0, T0, 0.5, "done")
    late = HostResult("h1", HostOutcome.FAILED, 1, T0, T0, 0.5, "again")
    assert await store.record_result("a1", ok, T0) is True
    assert await store.record_result("a1", late, T0) is False
    assert await store.record_result("zz", ok, T0) is False
    found = await store.get("a1")
    assert found is not None
    assert found.hosts[0] == replace(ok, sent_at=T0)
    assert found.state is ActionState.RUNNING  # h2 has not answered
    assert [(d.action_id, d.host) for d in await store.undispatched()] == [("a1", "h2")]
    await store.close()


async def test_what_was_committed_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    first = await ActionStore.open(url)
    await first.create(_action("a1"))
    await first.create(_action("a2", ("h3",)))
    await first.close()
    again = await ActionStore.open(url)
    assert [a.id for a in await again.recent()] == ["a1", "a2"]
    assert await again.count() == 2
    assert (await again.get("a2")) == _action("a2", ("h3",))
    await again.close()


async def test_hosts_that_never_answered_expire_after_the_cutoff(store: ActionStore) -> None:
    await store.create(_action())
    await store.mark_dispatched([("a1", "h1")], T0)
    answered = HostResult("h2", HostOutcome.SUCCEEDED, 0, T0, T0, 0.1, "ok")
    await store.record_result("a1", answered, T0)
    deadline = T0 + timedelta(minutes=10)
    assert await store.expire_overdue(deadline, T0) == 0  # not past it yet
    assert await store.expire_overdue(deadline + timedelta(seconds=1), deadline) == 1
    found = await store.get("a1")
    assert found is not None
    assert [(h.host, h.outcome) for h in found.hosts] == [
        ("h1", HostOutcome.EXPIRED),
        ("h2", HostOutcome.SUCCEEDED),
    ]
    assert found.state is ActionState.FAILED
    await store.close()


async def test_a_rollout_releases_hosts_batch_by_batch_and_records_the_servers_verdicts(
    store: ActionStore,
) -> None:
    rollout = Action(
        id="r1",
        kind=ActionKind.RESTART,
        application="shop",
        services=[],
        requested_by="alice",
        created_at=T0,
        deadline=T0 + timedelta(minutes=10),
        hosts=[_pending(h, batch, released=False) for batch, h in enumerate(["h1", "h2", "h3"])],
        strategy=Strategy(batch_size=1),
        rollout_state=RolloutState.RUNNING,
    )
    await store.create(rollout)
    assert await store.undispatched() == []  # nothing is due before the driver releases it
    assert [a.id for a in await store.in_progress()] == ["r1"]

    host_deadline = T0 + timedelta(minutes=2)
    await store.release("r1", ["h1"], T0, host_deadline)
    [due] = await store.undispatched()
    assert (due.host, due.deadline) == ("h1", host_deadline)

    assert await store.request_cancel("r1", CancelRequest(abort_running=True))
    # a release decided before the cancel was seen does nothing now; a skip spares a sent host
    await store.release("r1", ["h2"], T0, host_deadline)
    await store.mark("r1", {"h1": HostOutcome.SKIPPED}, "late verdict", T0)
    await store.mark("r1", {"h2": HostOutcome.SKIPPED, "h3": HostOutcome.SKIPPED}, "cancelled", T0)
    await store.set_rollout_state("r1", RolloutState.CANCELLED, "cancelled by alice")
    assert not await store.request_cancel("r1", CancelRequest())  # no longer running
    got = await store.get("r1")
    assert got is not None
    assert (got.rollout_state, got.halt_reason, got.cancel, got.strategy) == (
        RolloutState.CANCELLED,
        "cancelled by alice",
        CancelRequest(abort_running=True),
        Strategy(batch_size=1),
    )
    assert [(h.host, h.outcome, h.batch, h.sent_at) for h in got.hosts] == [
        ("h1", HostOutcome.PENDING, 0, T0),
        ("h2", HostOutcome.SKIPPED, 1, None),
        ("h3", HostOutcome.SKIPPED, 2, None),
    ]
    assert [a.id for a in await store.in_progress()] == ["r1"]  # h1 still to answer
    await store.create(_action("plain"))  # from before rollouts: no strategy, not driven
    assert [a.id for a in await store.in_progress()] == ["r1"]


async def test_a_host_given_up_on_gets_its_real_result_if_it_started_in_time(
    store: ActionStore,
) -> None:
    await store.create(_action("a1", ("h1", "h2")))
    await store.expire_overdue(T0 + timedelta(hours=1), T0 + timedelta(hours=1))
    in_time = HostResult("h1", HostOutcome.SUCCEEDED, 0, T0, T0, 0.1, "restarted")
    too_late = HostResult("h2", HostOutcome.SUCCEEDED, 0, T0 + timedelta(hours=1), T0, 0.1, "")
    assert await store.record_result("a1", in_time, T0) is True
    assert await store.record_result("a1", too_late, T0) is False
    assert await store.record_result("a1", in_time, T0) is False  # only once
    found = await store.get("a1")
    assert found is not None
    assert [(h.host, h.outcome) for h in found.hosts] == [
        ("h1", HostOutcome.SUCCEEDED),
        ("h2", HostOutcome.EXPIRED),
    ]
