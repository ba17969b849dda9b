"""The audit trail: entries go in with the change they record, and are found by filter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.model.override import Override
from drover.model.status import TargetStatus
from drover.store.audit import ORIGIN, AuditEntry, AuditLog, Origin
from drover.store.database import open_database
from drover.store.overrides import OverrideStore

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await open_database(database_url)
    yield engine
    await engine.dispose()


async def test_entries_are_found_by_actor_kind_prefix_subject_and_time(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    for n, (actor, kind, subject) in enumerate(
        [
            ("alice", "action.requested", "a1"),
            ("drover", "action.batch_released", "a1"),
            ("agent:h1", "action.host_result", "a1"),
            ("bob", "override.set", "o1"),
        ]
    ):
        await log.record(AuditEntry(actor, kind, subject, T0 + timedelta(minutes=n), {"n": n}))

    newest_first = await log.query()
    assert [e.kind for e in newest_first] == [
        "override.set",
        "action.host_result",
        "action.batch_released",
        "action.requested",
    ]
    assert [e.actor for e in await log.query(kind="action.")] == ["agent:h1", "drover", "alice"]
    assert [e.subject for e in await log.query(actor="bob")] == ["o1"]
    assert len(await log.query(subject="a1")) == 3
    window = await log.query(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert [e.detail for e in window] == [{"n": 2}, {"n": 1}]
    assert newest_first[0].at == T0 + timedelta(minutes=3)
    assert await log.query(kind="action") == []  # a prefix must end in '.'
    assert len(await log.query(limit=2)) == 2


async def test_an_entry_carries_the_requests_origin_and_goes_in_with_its_change(
    engine: AsyncEngine,
) -> None:
    overrides = OverrideStore(engine)
    token = ORIGIN.set(Origin("192.0.2.7", "req-42"))
    try:
        override = Override("o1", "shop", None, None, TargetStatus.STOPPED, "disk", "bob", T0, T0)
        await overrides.create(override, AuditEntry("bob", "override.set", "o1", T0))
        # a clear of nothing (already expired) changes nothing: no entry either
        assert not await overrides.clear("o1", "bob", T0, AuditEntry("bob", "x", "o1", T0))
    finally:
        ORIGIN.reset(token)
    [entry] = await AuditLog(engine).query()
    assert (entry.kind, entry.source, entry.correlation) == ("override.set", "192.0.2.7", "req-42")
