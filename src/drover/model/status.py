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
