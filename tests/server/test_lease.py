"""One server at a time drives the rollouts: the lease in KV, on a real nats-server, with
several holders trying at once, one stopping cleanly, and one that just vanishes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats.errors
import pytest
from nats.js.kv import KeyValue

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.embedded import EmbeddedNats
from drover.ops.counters import Counters
from drover.ops.loops import forever
from drover.server import lease as lease_module
from drover.server.lease import Lease
from tests.busauth import bus_settings
from tests.conftest import eventually

TTL = 1.5  # the bucket's max age here, instead of 10 s


@pytest.fixture
async def buses(nats_server: EmbeddedNats) -> AsyncIterator[list[Bus]]:
    opened = [Bus(bus_settings(nats_server, f"server-{n}"), Counters()) for n in range(3)]
    for bus in opened:
        await bus.connect()
    await opened[0].js.create_key_value(bucket=subjects.LEASES_BUCKET, ttl=TTL, history=1)
    yield opened
    for bus in opened:
        await bus.close()


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease_module, "RENEW", 0.2)
    monkeypatch.setattr(lease_module, "GIVE_UP", 0.7 * TTL)


@contextlib.asynccontextmanager
async def kept(lease: Lease) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(forever(f"lease.{lease.holder}", lease.keep, Counters()))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def holders(leases: list[Lease]) -> list[str]:
    return [lease.holder for lease in leases if lease.held.is_set()]


async def test_one_of_several_holds_it_and_a_clean_stop_hands_it_on_at_once(
    buses: list[Bus],
) -> None:
    leases = [Lease(bus, f"s{n}") for n, bus in enumerate(buses)]
    async with kept(leases[0]) as first, kept(leases[1]), kept(leases[2]):
        await eventually(lambda: len(holders(leases)) == 1)
        for _ in range(10):  # it stays with one through many renewals
            await asyncio.sleep(0.2)
            assert len(holders(leases)) == 1
        [holder] = [lease for lease in leases if lease.held.is_set()]
        if holder is leases[0]:
            first.cancel()
        await holder.release()
        loop = asyncio.get_running_loop()
        began = loop.time()
        await eventually(lambda: len(holders(leases)) == 1 and not holder.held.is_set())
        assert loop.time() - began < TTL  # handed on, not aged out


async def test_a_holder_that_vanishes_loses_it_when_its_entry_ages_out(buses: list[Bus]) -> None:
    gone, waiting = Lease(buses[0], "gone"), Lease(buses[1], "waiting")
    async with kept(gone) as task:
        await eventually(gone.held.is_set)
    assert task.cancelled()  # stopped renewing, without a word
    async with kept(waiting):
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.sleep(TTL / 3)
        assert not waiting.held.is_set()  # not before the entry aged out
        await eventually(waiting.held.is_set, timeout=10)
        assert loop.time() - began >= TTL / 3


async def test_work_runs_only_while_held_and_is_cancelled_when_it_is_lost(
    buses: list[Bus], nats_server: EmbeddedNats
) -> None:
    lease = Lease(buses[0], "worker")
    running = asyncio.Event()
    ended = asyncio.Event()

    async def work() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    driver = asyncio.create_task(lease.while_held(work))
    await asyncio.sleep(0.3)
    assert not running.is_set()  # not held yet: nothing runs
    async with kept(lease):
        await eventually(running.is_set)
        # Another server takes it over (as after this one's entry aged out): the next renewal
        # finds a revision that is not ours, and the work stops.
        kv = await buses[1].kv(subjects.LEASES_BUCKET)
        await kv.put("rollouts", b"someone else")
        await eventually(ended.is_set)
        await asyncio.wait_for(driver, 5)
        assert not lease.held.is_set()


async def test_a_holder_that_cannot_renew_stops_before_another_can_take_it(
    buses: list[Bus], monkeypatch: pytest.MonkeyPatch
) -> None:
    cut_off, waiting = Lease(buses[0], "cut-off"), Lease(buses[1], "waiting")
    ended_at: list[float] = []
    loop = asyncio.get_running_loop()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended_at.append(loop.time())

    driver = asyncio.create_task(cut_off.while_held(work))
    async with kept(cut_off):
        await eventually(cut_off.held.is_set)
        write = KeyValue._update  # what update() and create() both send through

        async def unanswered(self: KeyValue, *args: Any, **kwargs: Any) -> Any:
            if self._js is buses[0].js:  # its link is gone: nothing it sends is answered
                raise nats.errors.TimeoutError
            return await write(self, *args, **kwargs)

        monkeypatch.setattr(KeyValue, "_update", unanswered)
        async with kept(waiting):
            await eventually(waiting.held.is_set, timeout=10)
            taken_at = loop.time()
    await asyncio.wait_for(driver, 5)
    assert ended_at and ended_at[0] < taken_at  # it stopped before the other took over
    assert not cut_off.held.is_set()


async def test_a_renewal_stored_but_unanswered_keeps_the_lease(
    buses: list[Bus], monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = Lease(buses[0], "mine")
    update = KeyValue.update
    lost_once: list[bool] = []

    async def answer_lost(self: KeyValue, *args: Any, **kwargs: Any) -> int:
        revision = await update(self, *args, **kwargs)
        if not lost_once:
            lost_once.append(True)
            raise nats.errors.TimeoutError  # stored, but the answer never came
        return int(revision)

    monkeypatch.setattr(KeyValue, "update", answer_lost)
    async with kept(lease):
        await eventually(lease.held.is_set)
        await eventually(lambda: bool(lost_once))
        for _ in range(8):
            await asyncio.sleep(0.2)
            assert lease.held.is_set()


async def test_a_take_stored_but_unanswered_is_recognised_as_its_own(
    buses: list[Bus], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else the server would wait for its own entry to age out (10 s) before driving, as
    after a full restart of the nats cluster."""
    await buses[0].js.delete_key_value(subjects.LEASES_BUCKET)
    await buses[0].js.create_key_value(bucket=subjects.LEASES_BUCKET, ttl=60, history=1)
    lease = Lease(buses[0], "mine")
    create = KeyValue.create
    lost_once: list[bool] = []

    async def answer_lost(self: KeyValue, *args: Any, **kwargs: Any) -> int:
        revision = await create(self, *args, **kwargs)
        if not lost_once:
            lost_once.append(True)
            raise nats.errors.TimeoutError  # stored, but the answer never came
        return int(revision)

    monkeypatch.setattr(KeyValue, "create", answer_lost)
    async with kept(lease):
        await eventually(lambda: bool(lost_once))
        await eventually(lease.held.is_set, timeout=5)  # long before the 60 s entry ages out
        taken = await (await buses[1].kv(subjects.LEASES_BUCKET)).get("rollouts")
        assert taken.value == b"mine"


async def test_a_holder_stops_even_when_a_renewal_swallows_the_cancel(
    buses: list[Bus], monkeypatch: pytest.MonkeyPatch
) -> None:
    """nats-py waits through Python 3.11's wait_for, which drops a cancel that comes with the
    answer: the renewal returns as if nothing had happened. The loop must stop all the same
    (ops.cancels.checkpoint), not renew on for ever (a test of this file hung so in CI)."""
    lease = Lease(buses[0], "mine")
    update = KeyValue.update
    renewing = asyncio.Event()
    swallowed: list[bool] = []

    async def swallows_a_cancel(self: KeyValue, *args: Any, **kwargs: Any) -> int:
        renewing.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.append(True)
        return int(await update(self, *args, **kwargs))

    async with kept(lease) as task:
        await eventually(lease.held.is_set)
        monkeypatch.setattr(KeyValue, "update", swallows_a_cancel)
        await asyncio.wait_for(renewing.wait(), 5)
        task.cancel()
        await asyncio.wait({task}, timeout=2)
        assert swallowed == [True]
        assert task.cancelled()
