"""Errors of the systemd provider.

SystemdError   a D-Bus call to systemd failed, timed out, or the bus is not reachable
"""

from __future__ import annotations


class SystemdError(Exception):
    def __init__(self, unit: str | None, name: str, text: str) -> None:
        where = f"{unit}: " if unit else ""
        super().__init__(f"{where}{text} ({name})")
        self.unit = unit
        self.name = name  # the D-Bus error name, or drover.* for timeouts and lost connections
        self.text = text
