"""A throwaway PostgreSQL cluster for tests (see TESTING.md): initdb into a temporary folder,
pg_ctl start on a free loopback port, and one fresh database per test."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from drover.bus.embedded import free_port

USER = "drover"
_numbers = itertools.count(1)


class PostgresUnavailable(Exception):
    """PostgreSQL cannot be started here; the message says why."""


class PostgresCluster:
    def __init__(self, root: Path, port: int, bin_dir: Path, prefix: list[str]) -> None:
        self.root = root
        self.port = port
        self._bin = bin_dir
        self._prefix = prefix  # how to run the server's own tools: as the postgres user

    @classmethod
    def start(cls) -> PostgresCluster:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not binaries:
            raise PostgresUnavailable("no /usr/lib/postgresql/*/bin (Debian package postgresql)")
        bin_dir = Path(binaries[-1])
        run_as = _run_as()
        root = Path(tempfile.mkdtemp(prefix="drover-pg-"))
        if run_as:
            shutil.chown(root, run_as, run_as)
        port = free_port()
        data, log = root / "data", root / "log"
        prefix = ["runuser", "-u", run_as, "--"] if run_as else []
        try:
            _run(
                [
                    *prefix,
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    USER,
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            )
            options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
            _run(
                [
                    *prefix,
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ]
            )
        except PostgresUnavailable:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root, port, bin_dir, prefix)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database of its own; its SQLAlchemy URL."""
        name = f"t{os.getpid()}_{next(_numbers)}"
        _run([*self._client("psql", "postgres"), "-c", f"CREATE DATABASE {name}"])
        return self.url(name)

    def dump(self, url: str) -> bytes:
        """Everything the database of `url` holds, as pg_dump writes it (SQL)."""
        database = url.rsplit("/", 1)[1]
        done = subprocess.run(
            self._client("pg_dump", database), capture_output=True, check=True, timeout=60
        )
        return done.stdout

    def _client(self, tool: str, database: str) -> list[str]:
        """A client tool's argv, connected to `database` of this cluster."""
        return [
            str(self._bin / tool),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            USER,
            "-d",
            database,
        ]

    @property
    def log(self) -> Path:
        """The server's own log."""
        return self.root / "log"

    def stop(self) -> None:
        subprocess.run(
            [
                *self._prefix,
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
            timeout=30,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as err:
        raise PostgresUnavailable("running as root, and there is no postgres user") from err
    return "postgres"


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError as err:
        raise PostgresUnavailable(f"{argv[0]}: not installed") from err
    if done.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(argv[:4])}…: {done.stderr.strip()[-500:]}")


def start_or_skip() -> PostgresCluster:
    """Start one, or skip the test saying why; in CI (CI=true) fail instead of skipping."""
    try:
        return PostgresCluster.start()
    except PostgresUnavailable as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {err}")
        pytest.skip(f"cannot start PostgreSQL: {err}")
