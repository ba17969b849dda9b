"""`drover agent` with bad settings from its file or environment: one line, exit 2, at once.

Like tests/cli/test_bad_input.py, each case runs the real binary and fails before anything
starts, so none needs a nats-server.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.test_bad_input import DROVER, assert_one_line_error

LEVELS = "expected one of DEBUG, INFO, WARNING, ERROR"


def agent(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    return subprocess.run(
        [DROVER, "agent", "--data-dir", "state", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=cwd,
        env={**clean, **env},
    )


BAD_FILES = {
    "a value of the wrong kind": (
        'nats = "nats://127.0.0.1:4222"\nlog_level = "trace"\n',
        f"agent.toml:2:1: log_level 'trace': {LEVELS}",
    ),
    "an unknown key": (
        "heartbeat = 5\n",
        "agent.toml:1:1: unknown key 'heartbeat'; expected one of nats, host_id, data_dir, "
        "log_level, systemd, systemd_bus_address, systemd_root, heartbeat_interval, drain_timeout, "
        "metrics_listen, log_format, ssh_max_connections",
    ),
    "TOML that does not parse": ('host_id = "h1\n', "agent.toml:1:14: Illegal character '\\n'"),
}


@pytest.mark.parametrize(("text", "message"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_settings_file_is_one_line_with_its_place_and_exit_2(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "agent.toml").write_text(text)
    assert_one_line_error(agent(tmp_path, {}, "--config-file", "agent.toml"), 2, message)


def test_a_settings_file_named_but_missing_is_exit_2(tmp_path: Path) -> None:
    result = agent(tmp_path, {"DROVER_AGENT_CONFIG": "nowhere.toml"})
    assert_one_line_error(result, 2, "DROVER_AGENT_CONFIG nowhere.toml: no such file")


BAD_VARIABLES = {
    "log level": ({"DROVER_LOG_LEVEL": "loud"}, f"DROVER_LOG_LEVEL 'loud': {LEVELS}"),
    "systemd mode": (
        {"DROVER_SYSTEMD": "yes"},
        "DROVER_SYSTEMD 'yes': Input should be 'auto', 'on' or 'off'",
    ),
    "heartbeat interval": (
        {"DROVER_HEARTBEAT_INTERVAL": "-1"},
        "DROVER_HEARTBEAT_INTERVAL '-1': Input should be greater than or equal to 1",
    ),
    "metrics address": (
        {"DROVER_METRICS_LISTEN": "localhost:99999"},
        "DROVER_METRICS_LISTEN 'localhost:99999': expected HOST:PORT with a port from 1 to "
        "65535, e.g. 127.0.0.1:9464",
    ),
    "log format": (
        {"DROVER_LOG_FORMAT": "xml"},
        "DROVER_LOG_FORMAT 'xml': Input should be 'text' or 'json'",
    ),
}


@pytest.mark.parametrize(("env", "message"), BAD_VARIABLES.values(), ids=BAD_VARIABLES.keys())
def test_a_bad_variable_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    (tmp_path / "empty.toml").write_text("")
    result = agent(tmp_path, {"DROVER_AGENT_CONFIG": "empty.toml", **env})
    assert_one_line_error(result, 2, message)


def test_a_flag_given_overrides_a_bad_variable(tmp_path: Path) -> None:
    """The flag wins, so the variable's value is never used; the next mistake is reported."""
    (tmp_path / "agent.toml").write_text('nats = "nats://127.0.0.1:4222"\n')
    env = {"DROVER_LOG_LEVEL": "loud", "DROVER_AGENT_CONFIG": "agent.toml"}
    result = agent(tmp_path, env, "--log-level", "info", "--host-id", "a.b")
    assert_one_line_error(result, 2, "--host-id 'a.b': letters, digits, '-' and '_' only (max 63)")
