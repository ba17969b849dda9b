"""`drover config check` is what application owners put into their own CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.harness import write_tree

DROVER = str(Path(sys.executable).parent / "drover")
EXAMPLE = Path(__file__).parents[2] / "examples" / "config"


def drover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DROVER, *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_example_config_is_valid() -> None:
    result = drover("config", "check", str(EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok — 3 applications, 5 services" in result.stdout


def test_every_problem_is_printed_with_its_location_and_the_exit_is_non_zero(
    tmp_path: Path,
) -> None:
    write_tree(
        tmp_path,
        {
            "a.yaml": "applications:\n  shop:\n    services:\n      web:\n        comand: [x]\n",
            "b.yaml": "hosts:\n  h1:\n    labels: {env: prod}\n    labels: {env: dev}\n",
        },
    )
    result = drover("config", "check", str(tmp_path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "a.yaml:5:9: applications.shop.services.web: unknown field 'comand'" in lines
    assert any(line.startswith("b.yaml:4:5: ") and "duplicate key" in line for line in lines)
    assert "problem(s)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_path_is_a_clear_error() -> None:
    result = drover("config", "check", "/nonexistent/config")
    assert result.returncode == 2
    assert "/nonexistent/config" in result.stderr and "Traceback" not in result.stderr


def test_the_schema_is_json_schema_for_editors() -> None:
    result = drover("config", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert set(schema["properties"]) >= {"applications", "hosts", "groups", "approvals"}
    assert schema["additionalProperties"] is False
