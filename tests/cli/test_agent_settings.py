"""The agent's settings: defaults < file < environment < flags, and every bad value located."""

from __future__ import annotations

from pathlib import Path

import pytest

from drover.agent import settings
from drover.agent.errors import SettingsError
from drover.agent.settings import (
    AgentConfig,
    Change,
    changes,
    load,
    runtime_part,
)

FILE = """\
nats = "nats://file:4222"
host_id = "from-file"
data_dir = "/srv/file"
log_level = "warning"
systemd = "off"
systemd_bus_address = "unix:path=/run/file"
systemd_root = "/host"
heartbeat_interval = 5
drain_timeout = 12.5
"""


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(FILE)
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


def test_without_file_environment_or_flags_the_defaults_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "DEFAULT_FILE", tmp_path / "absent.toml")  # absent: fine
    assert load({}, {"DROVER_AGENT_CONFIG": ""}) == AgentConfig(  # empty: as if unset
        nats=None,  # the URLs the server gave when the host enrolled
        host_id=None,
        data_dir=Path("/var/lib/drover"),
        log_level="INFO",
        systemd="auto",
        systemd_bus_address=None,
        systemd_root=Path("/"),
        heartbeat_interval=10.0,
        drain_timeout=30.0,
    )


def test_the_file_sets_every_key(settings_file: Path) -> None:
    assert load({}, {}, settings_file) == AgentConfig(
        nats="nats://file:4222",
        host_id="from-file",
        data_dir=Path("/srv/file"),
        log_level="WARNING",
        systemd="off",
        systemd_bus_address="unix:path=/run/file",
        systemd_root=Path("/host"),
        heartbeat_interval=5.0,
        drain_timeout=12.5,
    )


def test_the_environment_overrides_the_file_and_flags_override_both(settings_file: Path) -> None:
    environ = {
        "DROVER_NATS": "nats://env:4222",
        "DROVER_HOST_ID": "from-env",
        "DROVER_LOG_LEVEL": "debug",
        "DROVER_HEARTBEAT_INTERVAL": "2.5",
        "DROVER_DRAIN_TIMEOUT": "",  # empty: as if unset
        "DROVER_SYSTEMD_ROOT": "/env-root",
    }
    flags = {"nats": "nats://flag:4222", "data_dir": Path("/srv/flag")}
    assert load(flags, environ, settings_file) == AgentConfig(
        nats="nats://flag:4222",
        host_id="from-env",
        data_dir=Path("/srv/flag"),
        log_level="DEBUG",
        systemd="off",
        systemd_bus_address="unix:path=/run/file",
        systemd_root=Path("/env-root"),
        heartbeat_interval=2.5,
        drain_timeout=12.5,
    )


def test_the_file_can_be_named_by_the_environment_and_the_flag_wins(
    settings_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.toml"
    other.write_text('host_id = "other"\n')
    assert load({}, {"DROVER_AGENT_CONFIG": str(settings_file)}).host_id == "from-file"
    assert load({}, {"DROVER_AGENT_CONFIG": str(settings_file)}, other).host_id == "other"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('log_level = "trace"\n', "{f}:1:1: log_level 'trace': expected one of DEBUG, INFO, "),
        ("\n  heartbeat_interval = 0\n", "{f}:2:3: heartbeat_interval 0: Input should be greater"),
        ('nats = "localhost:4222"\n', "{f}:1:1: nats 'localhost:4222': expected a nats://, "),
        ('host_id = "a.b"\n', "{f}:1:1: host_id 'a.b': letters, digits, '-' and '_' only"),
        ('systemd = "yes"\n', "{f}:1:1: systemd 'yes': Input should be 'auto', 'on' or 'off'"),
        ("drain_timeout = nan\n", "{f}:1:1: drain_timeout nan: Input should be a finite number"),
        ('nats = "nats://a"\nnat = 1\n', "{f}:2:1: unknown key 'nat'; expected one of nats, "),
        ("[nats]\nurl = 1\n", "{f}:1:2: nats {{'url': 1}}: Input should be a valid string"),
        ("[extra]\n", "{f}:1:2: unknown key 'extra'"),
        ("nats = \n", "{f}:1:8: Invalid value"),
        ('nats = "x"\nnats = "y"\n', "{f}:2:11: Cannot overwrite a value"),
    ],
)
def test_a_bad_file_is_one_problem_per_value_with_its_place(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        load({}, {}, path)
    assert str(caught.value).startswith(problem.format(f=path)), str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_problem_is_named_on_the_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "loud"\n')
    with pytest.raises(SettingsError) as caught:
        load({"host_id": "a b"}, {"DROVER_SYSTEMD": "maybe"}, path)
    assert str(caught.value) == (
        "--host-id 'a b': letters, digits, '-' and '_' only (max 63); "
        f"{path}:1:1: log_level 'loud': expected one of DEBUG, INFO, WARNING, ERROR; "
        "DROVER_SYSTEMD 'maybe': Input should be 'auto', 'on' or 'off'"
    )


def test_a_bad_value_that_is_overridden_does_not_matter(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "loud"\n')
    assert load({"log_level": "error"}, {}, path).log_level == "ERROR"


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"DROVER_HEARTBEAT_INTERVAL": "soon"}, "DROVER_HEARTBEAT_INTERVAL 'soon': Input should"),
        ({"DROVER_NATS": "http://x"}, "DROVER_NATS 'http://x': expected a nats://"),
    ],
)
def test_a_bad_variable_is_named(environ: dict[str, str], problem: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=f"^{problem}"):
        load({}, environ, write(tmp_path, ""))


def test_a_file_named_explicitly_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(SettingsError, match=f"^--config-file {missing}: no such file$"):
        load({}, {}, missing)
    with pytest.raises(SettingsError, match=f"^DROVER_AGENT_CONFIG {missing}: no such file$"):
        load({}, {"DROVER_AGENT_CONFIG": str(missing)})


def test_a_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(SettingsError, match=r"not UTF-8 text"):
        load({}, {}, path)


def test_a_reload_applies_the_runtime_keys_and_keeps_the_rest_for_a_restart() -> None:
    running = AgentConfig(nats="nats://a:4222", heartbeat_interval=10)
    new = AgentConfig(nats="nats://b:4222", heartbeat_interval=2, log_level="debug")
    found = changes(running, new)
    assert found == [
        Change("nats", "nats://a:4222", "nats://b:4222"),
        Change("log_level", "INFO", "DEBUG"),
        Change("heartbeat_interval", 10.0, 2.0),
    ]
    assert [change.at_runtime for change in found] == [False, True, True]
    assert [str(change) for change in found][1:] == [
        "log_level 'INFO' → 'DEBUG'",
        "heartbeat_interval 10.0 → 2.0",
    ]
    assert runtime_part(running, new) == AgentConfig(
        nats="nats://a:4222", heartbeat_interval=2, log_level="DEBUG"
    )
