"""Command-line values checked before anything starts, each mistake a CliError with the option.

A long-running command that starts with a bad value fails late and obscurely: a sync database
driver deep inside SQLAlchemy, a NATS URL retried forever, a busy port as an ExceptionGroup. So
the commands call these first; exit code 2 for a value that is wrong, 1 for a world that is (a
port that is taken).
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

from drover.cli.client import CliError
from drover.ops import logging as drover_logging

ASYNC_DATABASES = ("sqlite+aiosqlite", "postgresql+asyncpg")


def log_level(value: str) -> str:
    """The level in upper case, as `ops.logging.configure` takes it."""
    try:
        drover_logging.parse_level(value)
    except ValueError as err:
        levels = ", ".join(drover_logging.LEVELS)
        raise CliError(f"--log-level {value!r}: expected one of {levels}", 2) from err
    return value.upper()


def listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CliError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080", 2)
    return host.strip("[]"), int(port)


def ensure_listen_free(value: str, host: str, port: int) -> None:
    """Bind and release the address the HTTP API will bind (the same way), to fail before
    anything has started if the port is taken or the host is not ours. Port 0 binds anywhere."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as err:
        raise CliError(f"--listen {value}: {err.strerror or err}", 1) from err


def database_url(value: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    accepted = "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DATABASE"
    try:
        url = make_url(value)
    except (ArgumentError, ValueError) as err:
        raise CliError(f"--database {value!r}: not a database URL; expected {accepted}", 2) from err
    if url.drivername not in ASYNC_DATABASES:
        raise CliError(
            f"--database {value!r}: {url.drivername!r} is not an async driver; expected {accepted}",
            2,
        )
    driver = url.get_driver_name()
    if importlib.util.find_spec(driver) is None:
        raise CliError(f"--database {value!r}: the driver {driver!r} is not installed", 2)
    return value


def nats_url(value: str) -> str:
    from drover.agent.settings import nats_url_problem  # the one rule, shared with the agent

    problem = nats_url_problem(value)
    if problem:
        raise CliError(f"--nats {value!r}: {problem}", 2)
    return value


def config_source(path: Path, ref: str | None) -> None:
    """Fail now on a config that can never be read (a missing path, a ref on a plain folder);
    a config that is only broken right now is the server's to report while it runs."""
    from drover.config.errors import ConfigSourceError
    from drover.config.source import open_source

    if not path.exists():
        raise CliError(f"--config {path}: no such file or directory", 2)
    try:
        open_source(path, ref)
    except ConfigSourceError as err:
        raise CliError(str(err), 2) from err


def data_dir(path: Path, name: str = "--data-dir") -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"{name} {path}: {err.strerror or err}", 1) from err
    return path.resolve()


def host_id(value: str | None) -> str | None:
    from drover.model.names import is_host_id

    if value is not None and not is_host_id(value):
        raise CliError(f"--host-id {value!r}: letters, digits, '-' and '_' only (max 63)", 2)
    return value


def action_target(value: str) -> tuple[str, str | None]:
    """APP or APP/SERVICE: the application and the service, if one is named."""
    application, slash, service = value.partition("/")
    if not application or (slash and (not service or "/" in service)):
        raise CliError(f"{value!r}: expected APP or APP/SERVICE", 2)
    return application, service or None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: str, option: str = "--for") -> float:
    """Seconds in `90s`, `30m`, `4h` or `2d`."""
    number, unit = value[:-1], value[-1:]
    if unit not in _UNITS or not number.replace(".", "", 1).isdigit() or float(number) <= 0:
        raise CliError(f"{option} {value!r}: expected a duration like 90s, 30m, 4h or 2d", 2)
    return float(number) * _UNITS[unit]
