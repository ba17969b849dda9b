"""A principal's grants: its own, and those the config's `access:` gives its groups."""

from __future__ import annotations

from collections.abc import Iterable

from drover.config.schema import FleetConfig
from drover.model.access import Grant


def effective_grants(
    direct: Iterable[Grant], groups: Iterable[str], config: FleetConfig | None
) -> tuple[Grant, ...]:
    """Direct grants first, then each group's bindings in the active config (none before a
    config is active), without repeats."""
    found = list(direct)
    if config is not None:
        for group in sorted(set(groups)):
            for binding in config.access.get(group, []):
                found.append(binding.grant())
    return tuple(dict.fromkeys(found))
