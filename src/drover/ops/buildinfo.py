"""Version, commit and build time of this installation, for /info and `drover version`."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from drover import __version__

_SOURCE_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class BuildInfo:
    version: str
    commit: str
    build_time: str | None


@cache
def build_info() -> BuildInfo:
    """What the build hook stamped (hatch_build.py). In an editable install the stamp ages with
    every commit, so a source checkout reports the commit it is at now."""
    try:
        data = json.loads(resources.files("drover").joinpath("_build_info.json").read_text())
    except (OSError, ValueError):
        data = {}
    commit = _checkout_commit() or str(data.get("commit", "unknown"))
    return BuildInfo(version=__version__, commit=commit, build_time=data.get("build_time"))


def _checkout_commit() -> str | None:
    if not (_SOURCE_ROOT / ".git").exists() or not (_SOURCE_ROOT / "pyproject.toml").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(_SOURCE_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
