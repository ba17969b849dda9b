"""Build hook: stamp the commit and build time into the package (see drover.ops.buildinfo), and
put the built GUI in the wheel, building it first if need be, so `pip install` needs no Node."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUILD_INFO = Path("src/drover/_build_info.json")
GUI_DIST = Path("src/drover/gui/dist")


def _commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


class BuildInfoHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        info = {"commit": _commit(root), "build_time": datetime.now(UTC).isoformat()}
        (root / BUILD_INFO).write_text(json.dumps(info) + "\n")
        build_data.setdefault("artifacts", []).append(str(BUILD_INFO))
        if self.target_name == "wheel" and version != "editable":
            # An editable install serves the GUI from the source tree (`make gui` builds it).
            if not (root / GUI_DIST / "index.html").is_file():
                web = root / "web"
                subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=web, check=True)
                subprocess.run(["npm", "run", "build"], cwd=web, check=True)
            build_data["artifacts"].append(f"{GUI_DIST}/**")
