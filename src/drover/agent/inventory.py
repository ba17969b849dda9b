"""This host's inventory of units for discovery: kept current, kept on disk, published to KV.

The units are listed when the agent starts and again whenever systemd says the set of units may
have changed — after a short pause, so that the storm of signals of a daemon-reload (two for
every unit) is listed once. A unit no longer listed stays in the inventory with `vanished_since`
for `retention`, so the server can tell "gone" from "never there"; one that comes back loses the
mark. The inventory is kept on disk, so a unit that went while the agent was down is still
marked vanished when it starts again; and it stays as it is while systemd cannot be reached (a
systemd that does not answer is not a host without units).

It is written to KV only when its content changes (a new `taken_at` alone is no change), and in
full after every reconnect, so a server that lost its KV data gets it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Container, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from drover.agent.files import write_atomically
from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.errors import MalformedMessage
from drover.bus.messages import UnitInfo, UnitInventory, decode, encode
from drover.ops.cancels import bounded
from drover.ops.clock import Clock

log = logging.getLogger(__name__)

RETENTION = timedelta(days=7)
SETTLE = 0.5  # seconds between the first signal of a change and the listing
TOO_BIG = 768 * 1024  # bytes of an encoded inventory worth a warning
LONGEST_WAIT = 3600.0  # seconds without a signal before listing anyway


class UnitSource(Protocol):
    """Where the units come from: systemd, in the agent (providers/systemd/inventory.py)."""

    @property
    def connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def list_units(self) -> list[UnitInfo]: ...

    async def wait_change(self, timeout: float) -> bool:
        """True when the units may have changed, False after `timeout`; raises if the
        connection is lost."""
        ...

    async def close(self) -> None: ...


def merge(
    previous: Sequence[UnitInfo],
    listed: Sequence[UnitInfo],
    now: datetime,
    retention: timedelta,
    wanted: Container[str] = frozenset(),
) -> list[UnitInfo]:
    """The inventory after a listing, sorted by unit: the listed units, and those of `previous`
    not listed, vanished since they were first missed, until `retention` has passed. An
    ephemeral unit (no unit file of its own) that goes is simply gone, unless it is `wanted`
    (named by the host's desired state): hosts that run one per job, login or connection would
    otherwise pile them up."""
    units = {unit.unit: unit for unit in listed}
    for unit in previous:
        if unit.unit in units or (unit.ephemeral and unit.unit not in wanted):
            continue
        since = unit.vanished_since or now
        if now - since < retention:
            units[unit.unit] = unit.model_copy(update={"vanished_since": since})
    return [units[name] for name in sorted(units)]


def same_content(a: UnitInventory | None, b: UnitInventory | None) -> bool:
    """Whether two inventories say the same, whenever each was taken."""
    if a is None or b is None:
        return a is b
    return a.model_copy(update={"taken_at": b.taken_at}) == b


def next_expiry(units: Sequence[UnitInfo], retention: timedelta) -> datetime | None:
    """When the first vanished unit is due to be dropped."""
    vanished = [unit.vanished_since for unit in units if unit.vanished_since is not None]
    return min(vanished) + retention if vanished else None


class Inventory:
    def __init__(
        self,
        host: str,
        bus: Bus,
        source: UnitSource,
        path: Path,
        clock: Clock,
        *,
        retention: timedelta = RETENTION,
        settle: float = SETTLE,
    ) -> None:
        self.host = host
        self._bus = bus
        self._source = source
        self._path = path
        self._clock = clock
        self._retention = retention
        self._settle = settle
        self._wake = asyncio.Event()  # the publishing loop has something new
        # The units the host's desired state names: kept as vanished even if ephemeral.
        self.wanted: frozenset[str] = frozenset()
        self.current: UnitInventory | None = self._load()

    async def keep_current(self) -> None:
        """One step of the listing loop, for ops.loops.forever: connect and list, or wait for
        the next change and list again. When systemd cannot be reached or stops answering, the
        step raises (forever logs it once, and backs off) and the inventory stays as it is."""
        try:
            await self._take(await self._list())
        except asyncio.CancelledError:
            await self._source.close()  # the agent is stopping: leave nothing connected
            raise

    async def _list(self) -> list[UnitInfo]:
        try:
            if not self._source.connected:
                await self._source.connect()
            elif await self._source.wait_change(self._until_expiry()):
                await asyncio.sleep(self._settle)  # let the rest of the storm arrive
            return await self._source.list_units()
        except Exception:
            await self._source.close()  # the next step starts afresh
            raise

    async def publish(self) -> None:
        """One life of the publishing loop, for ops.loops.forever: writes the inventory at the
        start and whenever it changes; returns after a reconnect, to write it in full again."""
        generation = self._bus.generation
        published: UnitInventory | None = None
        while self._bus.generation == generation:
            self._wake.clear()
            current = self.current
            if current is not None and current is not published:
                await self._bus.put(
                    subjects.INVENTORY_BUCKET, subjects.inventory_key(self.host), encode(current)
                )
                published = current
            with contextlib.suppress(TimeoutError):
                await bounded(self._wake.wait(), 1.0)

    async def _take(self, listed: Sequence[UnitInfo]) -> None:
        now = self._clock.now()
        previous = self.current.units if self.current is not None else []
        units = merge(previous, listed, now, self._retention, self.wanted)
        taken = UnitInventory(host=self.host, taken_at=now, units=units)
        if same_content(self.current, taken):
            return
        data = encode(taken)
        await asyncio.to_thread(write_atomically, self._path, data)
        vanished = sum(1 for unit in taken.units if unit.vanished_since is not None)
        log.info("inventory: %d units, %d of them vanished", len(taken.units), vanished)
        if len(data) > TOO_BIG:
            log.warning(
                "inventory of %d units is %d kB, near NATS' default max_payload (1 MB): raise "
                "max_payload on the servers, or the inventory cannot be published",
                len(taken.units),
                len(data) // 1000,
            )
        self.current = taken
        self._wake.set()

    def _until_expiry(self) -> float:
        """Seconds to wait for a signal before listing anyway, to drop what expired."""
        units = self.current.units if self.current is not None else []
        expiry = next_expiry(units, self._retention)
        if expiry is None:
            return LONGEST_WAIT
        return min(LONGEST_WAIT, max(0.0, (expiry - self._clock.now()).total_seconds()))

    def _load(self) -> UnitInventory | None:
        """The inventory saved last, if there is a usable one."""
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            log.warning("cannot read the saved inventory: %s", err)
            return None
        try:
            saved = decode(UnitInventory, str(self._path), data)
        except MalformedMessage as err:
            log.warning("ignoring the saved inventory: %s", err)
            return None
        if saved.host != self.host:
            log.warning("ignoring the saved inventory of host %s", saved.host)
            return None
        return saved
