"""The agent's settings: defaults < settings file < environment < command-line flags.

The file is TOML, `/etc/drover/agent.toml` unless `--config-file` or `$DROVER_AGENT_CONFIG` names
another. The default file may be absent; a file named explicitly must exist. Each key has an
environment variable, `DROVER_` + the key in upper case (an empty one counts as unset). Only the
flags actually given on the command line take part.

Every bad value is reported with where it came from: `file:line:col: key`, the variable, or the
flag. On SIGHUP the agent reads the file (and environment) again; `RUNTIME_KEYS` take effect at
once, every other key needs a restart.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from drover.agent.errors import SettingsError
from drover.model.names import is_host_id
from drover.ops.logging import LEVELS

DEFAULT_FILE = Path("/etc/drover/agent.toml")
FILE_VARIABLE = "DROVER_AGENT_CONFIG"
NATS_SCHEMES = ("nats", "tls", "ws", "wss")
RUNTIME_KEYS = frozenset({"log_level", "heartbeat_interval", "drain_timeout"})


class AgentConfig(BaseModel):
    """What the agent is told, validated; `host_id` None means the short host name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # One URL or several, separated by commas; None: the URLs the server gave at enrollment.
    nats: str | None = None
    host_id: str | None = None
    data_dir: Path = Path("/var/lib/drover")
    log_level: str = "INFO"
    systemd: Literal["auto", "on", "off"] = "auto"
    systemd_bus_address: str | None = None
    # Where the host's root directory is, for reading unit files: "/" but in a container.
    systemd_root: Path = Path("/")
    heartbeat_interval: float = Field(10.0, ge=1, le=300, allow_inf_nan=False)
    drain_timeout: float = Field(30.0, ge=0, le=3600, allow_inf_nan=False)
    # HOST:PORT of a local Prometheus endpoint (GET /metrics); None: none.
    metrics_listen: str | None = None
    log_format: Literal["text", "json"] = "text"
    # SSH connections to the targets this agent manages (agent/ssh), open at once at most.
    ssh_max_connections: int = Field(16, ge=1, le=10_000)

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen(cls, value: str | None) -> str | None:
        if value is not None and listen_address(value) is None:
            raise PydanticCustomError(
                "listen", "expected HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:9464"
            )
        return value

    @field_validator("nats")
    @classmethod
    def _nats(cls, value: str | None) -> str | None:
        problem = nats_url_problem(value) if value is not None else None
        if problem:
            raise PydanticCustomError("nats_url", problem)
        return value

    @field_validator("host_id")
    @classmethod
    def _host_id(cls, value: str | None) -> str | None:
        if value is not None and not is_host_id(value):
            raise PydanticCustomError("host_id", "letters, digits, '-' and '_' only (max 63)")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        if isinstance(value, str) and value.upper() in LEVELS:
            return value.upper()
        raise PydanticCustomError("log_level", "expected one of " + ", ".join(LEVELS))


def listen_address(value: str) -> tuple[str, int] | None:
    """(host, port) of a `HOST:PORT` (an IPv6 host in brackets), or None if it is not one."""
    host, colon, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def nats_url_problem(value: str) -> str | None:
    """What is wrong with a NATS URL, or with a list of them separated by commas (the nodes of
    one cluster: any one that answers will do), or None."""
    *first, last = (f"{scheme}://" for scheme in NATS_SCHEMES)
    problem = f"expected a {', '.join(first)} or {last} URL with a host, e.g. nats://127.0.0.1:4222"
    if any(not _is_nats_url(url.strip()) for url in value.split(",")):
        return problem
    return None


def _is_nats_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        return False
    return parts.scheme in NATS_SCHEMES and bool(parts.hostname)


def variable(key: str) -> str:
    return f"DROVER_{key.upper()}"


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def load(
    flags: Mapping[str, object], environ: Mapping[str, str], config_file: Path | None = None
) -> AgentConfig:
    """Merge file < environment < `flags` (the ones given) and validate; SettingsError if bad.

    `config_file` is the `--config-file` flag; without it `$DROVER_AGENT_CONFIG` or the default.
    """
    path, named_by = _settings_file(config_file, environ)
    values: dict[str, object] = {}
    origins: dict[str, _Origin] = {}
    text, data = _read(path, named_by)
    for key, value in data.items():
        values[key] = value
        origins[key] = _Origin(key, _position(path, text, key))
    for key in AgentConfig.model_fields:
        if environ.get(variable(key)):
            values[key] = environ[variable(key)]
            origins[key] = _Origin(variable(key))
    for key, value in flags.items():
        values[key] = value
        origins[key] = _Origin(flag(key))
    try:
        return AgentConfig.model_validate(values)
    except ValidationError as err:
        problems = [_problem(error, origins) for error in err.errors()]
        raise SettingsError("; ".join(problems)) from err


@dataclass(frozen=True)
class Change:
    key: str
    old: object
    new: object

    @property
    def at_runtime(self) -> bool:
        return self.key in RUNTIME_KEYS

    def __str__(self) -> str:
        return f"{self.key} {_show(self.old)} → {_show(self.new)}"


def changes(old: AgentConfig, new: AgentConfig) -> list[Change]:
    return [
        Change(key, getattr(old, key), getattr(new, key))
        for key in AgentConfig.model_fields
        if getattr(old, key) != getattr(new, key)
    ]


def runtime_part(running: AgentConfig, new: AgentConfig) -> AgentConfig:
    """The settings in force after a reload: `new` for RUNTIME_KEYS, `running` for the rest."""
    return running.model_copy(update={key: getattr(new, key) for key in RUNTIME_KEYS})


@dataclass(frozen=True)
class _Origin:
    name: str  # the key in the file, the variable, or the flag
    place: str | None = None  # file:line:col (or just the file) for a key in the file


def _settings_file(config_file: Path | None, environ: Mapping[str, str]) -> tuple[Path, str | None]:
    """The file to read, and what named it (None for the default, which may be absent)."""
    if config_file is not None:
        return config_file, "--config-file"
    if environ.get(FILE_VARIABLE):
        return Path(environ[FILE_VARIABLE]), FILE_VARIABLE
    return DEFAULT_FILE, None


def _read(path: Path, named_by: str | None) -> tuple[str, dict[str, Any]]:
    where = f"{named_by or 'settings file'} {path}"
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as err:
        if named_by is None:
            return "", {}
        raise SettingsError(f"{where}: no such file") from err
    except OSError as err:
        raise SettingsError(f"{where}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise SettingsError(f"{where}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SettingsError(_toml_problem(path, err)) from err


_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _toml_problem(path: Path, err: tomllib.TOMLDecodeError) -> str:
    """`file:line:col: what`; Python 3.11 has the position only in the message."""
    message = str(err)
    found = _AT.search(message)
    if found is None:
        return f"{path}: {message}"
    return f"{path}:{found[1]}:{found[2]}: {message[: found.start()]}"


def _position(path: Path, text: str, key: str) -> str:
    """`file:line:col` of the key's first assignment (or table header), else the file."""
    name = re.escape(key)
    found = re.search(
        rf"""^([ \t]*\[*[ \t]*)(?:{name}|"{name}"|'{name}')[ \t]*[=.\]]""", text, re.MULTILINE
    )
    if found is None:
        return str(path)
    line = text.count("\n", 0, found.start()) + 1
    return f"{path}:{line}:{len(found[1]) + 1}"


def _problem(error: ErrorDetails, origins: Mapping[str, _Origin]) -> str:
    key = str(error["loc"][0]) if error["loc"] else ""
    origin = origins.get(key, _Origin(key))
    prefix = f"{origin.place}: " if origin.place else ""
    if error["type"] == "extra_forbidden":
        known = ", ".join(AgentConfig.model_fields)
        return f"{prefix}unknown key {key!r}; expected one of {known}"
    return f"{prefix}{origin.name} {_show(error['input'])}: {error['msg']}"


def _show(value: object) -> str:
    return repr(str(value)) if isinstance(value, Path) else repr(value)
