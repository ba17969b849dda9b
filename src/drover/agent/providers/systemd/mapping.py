"""What a unit's systemd state means in drover's words. Pure: no D-Bus, no event loop.

systemd describes a unit with `ActiveState` (the general state) and `SubState` (specific to the
unit type); a service adds `Result`, `MainPID` and `NRestarts`. `UnitSnapshot` holds the
properties drover reads, built from the plain values of `GetAll` or `PropertiesChanged`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from drover.model.status import ServiceStatus

UNIT_INTERFACE = "org.freedesktop.systemd1.Unit"
SERVICE_INTERFACE = "org.freedesktop.systemd1.Service"

_UINT64_MAX = (
    2**64 - 1
)  # what systemd reports for "not known", e.g. MemoryCurrent without accounting


class Mapped(NamedTuple):
    status: ServiceStatus
    message: str


def map_status(
    active_state: str,
    sub_state: str,
    unit_file_state: str | None = None,
    result: str | None = None,
    n_restarts: int = 0,
) -> Mapped:
    """Map systemd's view of a loaded unit to a drover status and a line for people."""
    mapped = _by_active_state(active_state, sub_state, result)
    notes = []
    if n_restarts and mapped.status is not ServiceStatus.RUNNING:
        notes.append(f"restarted {n_restarts}× by systemd")
    if unit_file_state in ("masked", "masked-runtime"):
        notes.append("unit masked")
    return Mapped(mapped.status, "; ".join(filter(None, [mapped.message, *notes])))


def _by_active_state(active: str, sub: str, result: str | None) -> Mapped:
    failure = result if result and result != "success" else None
    match active:
        case "active":
            return Mapped(ServiceStatus.RUNNING, "" if sub == "running" else f"active ({sub})")
        case "reloading":
            return Mapped(ServiceStatus.RUNNING, "reloading")
        case "activating" if sub == "auto-restart":
            return Mapped(ServiceStatus.STARTING, f"restarting after failure (result: {result})")
        case "activating":
            return Mapped(ServiceStatus.STARTING, f"activating ({sub})")
        case "deactivating":
            return Mapped(ServiceStatus.STOPPING, f"deactivating ({sub})")
        case "inactive":
            return Mapped(ServiceStatus.STOPPED, f"result: {failure}" if failure else "")
        case "failed":
            return Mapped(ServiceStatus.FAILED, f"result: {result or 'unknown'}")
        case _:  # maintenance, refreshing, and whatever a later systemd adds
            return Mapped(ServiceStatus.UNKNOWN, f"systemd state {active}/{sub}")


@dataclasses.dataclass(frozen=True)
class UnitSnapshot:
    """The properties drover reads from one unit, as systemd last reported them."""

    name: str
    load_state: str = "loaded"
    active_state: str = "inactive"
    sub_state: str = "dead"
    unit_file_state: str = ""
    state_change_usec: int = 0  # CLOCK_REALTIME µs; 0 when systemd has not recorded one
    result: str | None = None  # Service only
    main_pid: int = 0  # Service only; 0 when there is no main process
    n_restarts: int = 0  # Service only
    memory_current: int | None = None  # Service only; None when not accounted

    @classmethod
    def from_properties(
        cls, name: str, unit: Mapping[str, Any], service: Mapping[str, Any] | None = None
    ) -> UnitSnapshot:
        """Build from the plain values of GetAll on the Unit and (for a service) Service
        interfaces."""
        return cls(name).merged(UNIT_INTERFACE, unit).merged(SERVICE_INTERFACE, service or {})

    def merged(self, interface: str, changed: Mapping[str, Any]) -> UnitSnapshot:
        """This snapshot with the properties one interface reported changed."""
        fields = _FIELDS.get(interface)
        if fields is None:
            return self
        update: dict[str, Any] = {}
        for prop, (field, kind) in fields.items():
            if prop in changed and isinstance(changed[prop], kind):
                update[field] = changed[prop]
        if update.get("memory_current") == _UINT64_MAX:
            update["memory_current"] = None
        return dataclasses.replace(self, **update) if update else self

    @property
    def since(self) -> datetime | None:
        if self.state_change_usec <= 0:
            return None
        try:
            return datetime.fromtimestamp(self.state_change_usec / 1_000_000, UTC)
        except (OverflowError, ValueError, OSError):  # past year 9999: not a time to report
            return None

    def describe(self) -> Mapped:
        """The status and message for this unit, including whether it exists at all."""
        if self.load_state == "not-found":
            return Mapped(ServiceStatus.UNKNOWN, "unit not found")
        mapped = map_status(
            self.active_state, self.sub_state, self.unit_file_state, self.result, self.n_restarts
        )
        if self.load_state in ("error", "bad-setting"):
            note = f"unit file cannot be loaded ({self.load_state})"
            return Mapped(mapped.status, f"{mapped.message}; {note}" if mapped.message else note)
        return mapped


# interface → D-Bus property → (snapshot field, the Python type its value must have)
_FIELDS: dict[str, dict[str, tuple[str, type]]] = {
    UNIT_INTERFACE: {
        "LoadState": ("load_state", str),
        "ActiveState": ("active_state", str),
        "SubState": ("sub_state", str),
        "UnitFileState": ("unit_file_state", str),
        "StateChangeTimestamp": ("state_change_usec", int),
    },
    SERVICE_INTERFACE: {
        "Result": ("result", str),
        "MainPID": ("main_pid", int),
        "NRestarts": ("n_restarts", int),
        "MemoryCurrent": ("memory_current", int),
    },
}
