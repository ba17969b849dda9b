"""server.live: changes coalesced into ticks, mapped from audit entries, seen per caller."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from drover.server.live import MAX_HOSTS, Change, LiveEvents, Topic, change_of
from drover.store.audit import AuditEntry

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def entry(kind: str, subject: str = "s", **detail: object) -> AuditEntry:
    return AuditEntry("alice", kind, subject, NOW, dict(detail))


def test_audit_kinds_map_to_the_topics_they_touch() -> None:
    requested = change_of(entry("action.requested", "a1", application="shop"))
    assert requested.topics == {Topic.ACTIONS, Topic.AUDIT}
    assert (requested.actions, requested.applications) == ({"a1"}, {"shop"})
    approved = change_of(entry("approval.approved", "a1"))
    assert approved.topics == {Topic.APPROVALS, Topic.ACTIONS, Topic.AUDIT}
    assert change_of(entry("override.set")).topics == {Topic.FLEET, Topic.AUDIT}
    assert not change_of(entry("override.set", application="shop")).any_application
    assert change_of(entry("config.applied")).any_application
    assert change_of(entry("config.applied")).topics == {Topic.CONFIG, Topic.FLEET, Topic.AUDIT}
    gone = change_of(entry("host.decommissioned", "web-01"))
    assert gone.hosts == {"web-01"}
    assert change_of(entry("auth.login")).topics == {Topic.AUDIT}


def test_a_tick_names_only_what_the_caller_may_read() -> None:
    change = Change({Topic.FLEET}, {"shop", "billing"}, {"h1", "db-1"}, {"a1"})
    seen = change.seen_by(lambda app: app == "shop", lambda host: host == "h1")
    assert seen == {
        "topics": ["fleet"],
        "applications": ["shop"],
        "hosts": ["h1"],
        "actions": ["a1"],
    }
    many = Change({Topic.FLEET}, hosts={f"h{n}" for n in range(MAX_HOSTS + 1)})
    assert many.seen_by(lambda _: True, lambda _: True)["hosts"] is None  # too many: any
    record = Change({Topic.FLEET}, hosts={"h1"}, any_application=True)
    assert record.seen_by(lambda _: False, lambda _: True)["applications"] is None


async def test_changes_within_an_interval_arrive_as_one_tick() -> None:
    live = LiveEvents(interval=0.05)
    live.fleet_changed("h1", "shop")  # nobody listens: nothing is kept
    async with live.listen() as listener:
        assert live.listeners == 1
        live.fleet_changed("h1", "shop")
        live.fleet_changed("h2", None)
        live.audited(entry("action.dispatched", "a1"))
        tick = await listener.next(timeout=2)
        assert tick is not None
        assert tick.topics == {Topic.FLEET, Topic.ACTIONS, Topic.AUDIT}
        assert (tick.hosts, tick.applications, tick.actions) == ({"h1", "h2"}, {"shop"}, {"a1"})
        assert await listener.next(timeout=0.2) is None  # nothing more happened
    assert live.listeners == 0


async def test_a_listener_that_falls_behind_gets_one_merged_tick() -> None:
    live = LiveEvents(interval=0.01)
    async with live.listen() as listener:
        for host in ("h1", "h2", "h3"):
            live.fleet_changed(host, None)
            await asyncio.sleep(0.05)  # each its own tick; the listener reads none of them
        tick = await listener.next(timeout=1)
        assert tick is not None and tick.hosts == {"h1", "h2", "h3"}
    live.close()


async def test_closing_ends_every_listener_and_any_later_one() -> None:
    live = LiveEvents()
    async with live.listen() as listener:
        live.close()
        assert await listener.next(timeout=1) is None
        assert listener.closed
    async with live.listen() as late:
        assert late.closed
