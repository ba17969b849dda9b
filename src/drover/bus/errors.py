"""Errors of the bus layer.

BusError
├── MalformedMessage   a payload that is not a valid message of the expected type
├── NotConnected       the bus could not be reached within the time allowed
├── ConsumerMissing    a consumer that someone else makes (the server, for a host) is not there
└── ReplicasRefused    nats-server cannot keep as many copies of a stream as asked
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


class ReplicasRefused(BusError):
    """nats-server cannot keep `replicas` copies of a stream: it runs alone (`permanent`: no
    wait helps), or fewer JetStream servers of its cluster are up than copies wanted."""

    def __init__(self, stream: str, replicas: int, reason: str, *, permanent: bool) -> None:
        if permanent:
            advice = "it is not clustered: run --bus-replicas 1, or a cluster of 3 nats-servers"
        else:
            advice = (
                f"its cluster has fewer than {replicas} JetStream servers up: start the missing "
                f"ones, or lower --bus-replicas to the cluster's size"
            )
        super().__init__(
            f"--bus-replicas {replicas}: nats-server refused {replicas} replicas of stream "
            f"{stream} ({reason}); {advice}"
        )
        self.stream = stream
        self.replicas = replicas
        self.permanent = permanent
