"""The dependency direction of src/drover/__init__.py, checked by reading every import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "drover"

# What each layer may import from drover (besides itself).
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "gui": set(),  # no code: the web GUI's build, which the server serves
    "ops": {"model"},
    "config": {"model", "ops"},
    "store": {"model", "ops"},
    "bus": {"model", "ops"},
    "agent": {"model", "ops", "bus"},
    "server": {"model", "ops", "bus", "store", "config"},
    "sim": {"model", "ops", "bus", "agent"},
    "outpost": {"model", "ops", "bus"},
    "cli": {"model", "ops", "bus", "store", "config", "server", "agent", "sim", "outpost"},
}


def drover_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "drover" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = {
        f"{path.relative_to(SRC)} imports drover.{imported}"
        for path in (SRC / layer).rglob("*.py")
        for imported in drover_imports(path) - ALLOWED[layer] - {layer}
        if imported not in ("__init__",) and (SRC / imported).is_dir()
    }
    assert sorted(wrong) == []


def test_every_package_is_a_known_layer() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)
