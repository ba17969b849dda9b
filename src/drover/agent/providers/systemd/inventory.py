"""The host's systemd units as discovery sees them: every service, socket and timer, loaded or
only present as a unit file, with its description, its slice and the `X-Drover-*` keys of its
unit file and drop-ins.

systemd ignores `X-` keys and does not expose them on D-Bus, so they are read from the files
systemd names (`FragmentPath`, then `DropInPaths` in its order), below `root`: an agent in a
container sees the host's files elsewhere. A unit that is only a unit file is loaded for the
read (`LoadUnit`), as `systemctl show` does; systemd unloads it again by itself.

Each unit is read once and cached by name until a daemon-reload (`Reloading`) or a change of
unit files (`UnitFilesChanged`) says its files may say something else now. Signals that say the
set of units may have changed wake `wait_change`; those that cannot change it — a unit
already listed being loaded, one with a unit file being unloaded, which the reads here cause
themselves — do not.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import FIRST_COMPLETED
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from drover.agent.providers.systemd.errors import SystemdError
from drover.agent.providers.systemd.manager import ListedUnit, SystemdManager
from drover.agent.providers.systemd.mapping import SERVICE_INTERFACE, UNIT_INTERFACE
from drover.agent.providers.systemd.transient import is_transient_unit_name
from drover.bus.messages import UnitInfo

log = logging.getLogger(__name__)

DROVER_KEY_PREFIX = "X-Drover-"
SOCKET_INTERFACE = "org.freedesktop.systemd1.Socket"
# The unit types discovery looks at, and the interface with their Slice (timers have none).
SLICE_INTERFACES: dict[str, str | None] = {
    "service": SERVICE_INTERFACE,
    "socket": SOCKET_INTERFACE,
    "timer": None,
}
# Answers about one unit (gone since it was listed, or not what it seemed): that unit is left
# out. Any other failure — no answer, a lost connection — fails the whole listing.
_UNIT_ERRORS = (
    "org.freedesktop.systemd1.",
    "org.freedesktop.DBus.Error.Unknown",
    "org.freedesktop.DBus.Error.InvalidArgs",
)


def discoverable(name: str) -> bool:
    """A service, socket or timer, and not a template (`foo@.service`)."""
    stem, _, kind = name.rpartition(".")
    return kind in SLICE_INTERFACES and bool(stem) and not stem.endswith("@")


def assignments(text: str) -> Iterator[tuple[str, str]]:
    """Every `key=value` of a unit file in order, in any section (systemd.syntax(7)): comment
    lines skipped, a line ending in a backslash joined to the next with a space."""
    pending: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("#", ";")):
            continue  # also inside a continued value, as systemd has it
        if line.endswith("\\"):
            pending = (pending or "") + line[:-1] + " "
            continue
        if pending is not None:
            line, pending = pending + line, None
        key, sep, value = line.partition("=")
        if sep and not line.startswith("["):
            yield key.strip(), value.strip()
    if pending is not None:  # the file ends inside a continued value: systemd takes what is there
        key, sep, value = pending.partition("=")
        if sep:
            yield key.strip(), value.strip()


def drover_keys(texts: Iterable[str]) -> dict[str, str]:
    """The `X-Drover-*` keys of a unit file and then its drop-ins: the last assignment wins, and
    an empty one removes the key (as an empty assignment resets a setting in systemd)."""
    found: dict[str, str] = {}
    for text in texts:
        for key, value in assignments(text):
            if not key.startswith(DROVER_KEY_PREFIX):
                continue
            if value:
                found[key] = value
            else:
                found.pop(key, None)
    return found


def may_change_set(signal: str, unit: str | None, listed: set[str], with_file: set[str]) -> bool:
    """Whether a manager signal may change the set of units discovery sees. `listed`: the names
    of the last listing; `with_file`: those of them with a unit file."""
    if unit is None:  # Reloading, UnitFilesChanged
        return True
    if not discoverable(unit) or is_transient_unit_name(unit):
        return False
    if signal == "UnitNew":
        return unit not in listed
    return unit not in with_file  # UnitRemoved: a unit with a file stays listed


class UnitLister:
    """Lists this host's units over a connection of its own to systemd."""

    def __init__(self, bus_address: str | None, root: Path, *, call_timeout: float = 10.0) -> None:
        self.manager = SystemdManager(bus_address, call_timeout=call_timeout)
        self.root = root
        self._cache: dict[str, UnitInfo | None] = {}  # None: not to be listed (an alias, …)
        self._files: dict[str, str] | None = None  # ListUnitFiles, until unit files change
        self._epoch = 0  # grows when the cache is dropped: a read begun before is not cached
        self._listed: set[str] = set()
        self._with_file: set[str] = set()
        self._changed = asyncio.Event()
        # Done when the connection is gone; one per connection, never cancelled while it runs:
        # cancelling a wait for the end of a dbus-fast connection cancels that connection's
        # own future, and every later wait would end at once.
        self._lost: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.manager.connected

    async def connect(self) -> None:
        """Connect and ask for the signals; raises SystemdError when systemd is not reachable."""
        await self.close()
        await self.manager.connect()
        self._lost = asyncio.ensure_future(self.manager.wait_disconnected())
        self._forget()  # systemd may have been reloaded or restarted while we were away
        await self.manager.watch_unit_set(self._on_signal)

    async def close(self) -> None:
        await self.manager.close()
        if self._lost is not None:
            await asyncio.wait({self._lost}, timeout=1.0)  # ends with the connection
            self._lost = None

    async def wait_change(self, timeout: float) -> bool:
        """Wait until a signal says the units may have changed since the last listing began
        (True) or `timeout` passes (False); raises SystemdError if the connection is lost."""
        lost = self._lost
        if lost is None or lost.done() or not self.manager.connected:
            raise SystemdError(None, "drover.Disconnected", "lost the connection to systemd")
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({changed, lost}, timeout=timeout, return_when=FIRST_COMPLETED)
        finally:
            changed.cancel()
        if lost.done():
            raise SystemdError(None, "drover.Disconnected", "lost the connection to systemd")
        return self._changed.is_set()

    async def list_units(self) -> list[UnitInfo]:
        """Every unit discovery looks at, sorted by name; raises SystemdError when systemd does
        not answer."""
        self._changed.clear()  # a signal from now on means: list again
        epoch = self._epoch
        loaded = {u.name: u for u in await self.manager.list_units() if discoverable(u.name)}
        files = await self._unit_files(epoch)
        self._listed, self._with_file = set(loaded) | set(files), set(files)
        found = []
        for name in sorted(self._listed):
            unit = loaded.get(name)
            if _drovers_own(name, files.get(name)) or (unit and unit.load_state == "not-found"):
                continue
            info = await self._info(name, unit, epoch)
            if info is not None:
                ephemeral = name not in files
                if info.ephemeral != ephemeral:
                    info = info.model_copy(update={"ephemeral": ephemeral})
                found.append(info)
        self._cache = {name: info for name, info in self._cache.items() if name in self._listed}
        return found

    async def _unit_files(self, epoch: int) -> dict[str, str]:
        """Unit file name → its state. Read only after a change of unit files: ListUnitFiles
        costs systemd far more than any other call here (it works out every file's state)."""
        if self._files is None:
            # A transient unit's file (in /run/systemd/transient) lasts only as long as the
            # unit, and its going sends no UnitFilesChanged: such units count while loaded.
            files = {
                name: file.state
                for file in await self.manager.list_unit_files()
                if discoverable(name := PurePosixPath(file.path).name) and file.state != "transient"
            }
            if epoch != self._epoch:
                return files  # already stale: used once, not kept
            self._files = files
        return self._files

    async def _info(self, name: str, unit: ListedUnit | None, epoch: int) -> UnitInfo | None:
        if name in self._cache:
            return self._cache[name]
        try:
            info = await self._read(name, unit)
        except SystemdError as err:
            if not err.name.startswith(_UNIT_ERRORS):
                raise
            log.debug("%s left out of the inventory: %s", name, err)
            return None  # not cached: the next listing tries again
        if epoch == self._epoch:
            self._cache[name] = info
        return info

    async def _read(self, name: str, unit: ListedUnit | None) -> UnitInfo | None:
        """One property at a time: GetAll would have systemd work out costly ones (the unit
        file's state) that are not needed. Each call on a unit that is only a unit file loads it
        anew, which is still cheaper."""
        if unit is not None:
            path, description = unit.path, unit.description
        else:  # only a unit file: loading it gives it an object to read
            path = await self.manager.load_unit(name)
            if await self._get(name, path, "Id") != name:
                return None  # an alias, listed under the name it stands for
            if await self._get(name, path, "LoadState") == "not-found":
                return None
            description = await self._get(name, path, "Description")
        unit_slice = ""
        if (interface := SLICE_INTERFACES[name.rpartition(".")[2]]) is not None:
            unit_slice = await self.manager.property(name, path, interface, "Slice")
        fragment = await self._get(name, path, "FragmentPath")
        drop_ins = await self._get(name, path, "DropInPaths")
        properties = await asyncio.to_thread(self._drover_keys, name, [fragment, *drop_ins])
        return UnitInfo(
            unit=name,
            description=str(description),
            slice=str(unit_slice),
            properties=properties,
        )

    async def _get(self, name: str, path: str, prop: str) -> Any:
        return await self.manager.property(name, path, UNIT_INTERFACE, prop)

    def _drover_keys(self, name: str, paths: Sequence[str]) -> dict[str, str]:
        texts = []
        for path in paths:
            if not path:
                continue
            try:
                texts.append((self.root / path.lstrip("/")).read_text(errors="replace"))
            except OSError as err:  # gone since systemd read it, or not ours to read
                log.debug("%s: cannot read %s: %s", name, path, err)
        return drover_keys(texts)

    def _on_signal(self, signal: str, unit: str | None) -> None:
        if unit is None:  # a reload or changed unit files: what was read may be stale
            self._forget()
        if may_change_set(signal, unit, self._listed, self._with_file):
            self._changed.set()

    def _forget(self) -> None:
        self._cache.clear()
        self._files = None
        self._epoch += 1


def _drovers_own(name: str, file_state: str | None) -> bool:
    """A transient unit the agent made for a supervised process (transient.py); a unit named
    so that has a unit file of its own is not the agent's."""
    return is_transient_unit_name(name) and file_state in (None, "transient")
