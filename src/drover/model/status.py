"""Service statuses, targets and drift."""

from __future__ import annotations

from enum import StrEnum


class ServiceStatus(StrEnum):
    """What a provider observed. The same words for every provider."""

    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    STARTING = "starting"
    STOPPING = "stopping"
    UNKNOWN = "unknown"
    # Set by the server, never by a provider: a discovered unit that is gone from its host.
    VANISHED = "vanished"


class TargetStatus(StrEnum):
    """What the configuration asks for."""

    RUNNING = "running"
    STOPPED = "stopped"


def has_drift(current: ServiceStatus | None, target: TargetStatus) -> bool:
    """True when a service is not where its target says it should be.

    A service in transition towards its target (starting for running, stopping for stopped) is
    not drift; a service nobody has reported yet (`None`) is.
    """
    if current is None:
        return True
    if target is TargetStatus.RUNNING:
        return current not in (ServiceStatus.RUNNING, ServiceStatus.STARTING)
    return current not in (ServiceStatus.STOPPED, ServiceStatus.STOPPING, ServiceStatus.FAILED)


class Policy(StrEnum):
    """What the agent does about drift."""

    OBSERVE = "observe"  # report it, nothing more
    ENFORCE = "enforce"  # bring the service back to target, with backoff, up to a limit


class Convergence(StrEnum):
    """Where an enforced service stands against its target."""

    OK = "ok"  # at its target (or on its way there by itself)
    CONVERGING = "converging"  # drifted; the agent is bringing it back
    FAILED = "failed-to-converge"  # the attempts ran out; it stays as it is until told again
    OBSERVED = "observed"  # drifted under the observe policy: reported, not corrected
