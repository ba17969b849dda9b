"""Version, commit and build time of this installation, for /info and `drover version`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from drover import __version__


@dataclass(frozen=True)
class BuildInfo:
    version: str
    commit: str
    build_time: str | None


def build_info() -> BuildInfo:
    """Read what the build hook stamped (hatch_build.py); 'unknown' for a source tree."""
    try:
        raw = resources.files("drover").joinpath("_build_info.json").read_text()
        data = json.loads(raw)
    except (OSError, ValueError):
        data = {}
    return BuildInfo(
        version=__version__,
        commit=str(data.get("commit", "unknown")),
        build_time=data.get("build_time"),
    )
