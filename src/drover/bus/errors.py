"""Errors of the bus layer.

BusError
├── MalformedMessage   a payload that is not a valid message of the expected type
├── NotConnected       the bus could not be reached within the time allowed
└── ConsumerMissing    a consumer that someone else makes (the server, for a host) is not there
"""

from __future__ import annotations


class BusError(Exception):
    pass


class MalformedMessage(BusError):
    def __init__(self, subject: str, kind: str, reason: str) -> None:
        super().__init__(f"malformed {kind} on {subject}: {reason}")
        self.subject = subject
        self.kind = kind
        self.reason = reason


class NotConnected(BusError):
    pass


class ConsumerMissing(BusError):
    pass
