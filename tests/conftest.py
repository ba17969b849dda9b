"""Shared fixtures: a real nats-server per test, config folders, and a running drover."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from drover.bus.embedded import BusSecurity, EmbeddedNats
from tests.postgres import PostgresCluster, start_or_skip
from tests.sshd import Sshd
from tests.sshd import start_or_skip as start_sshd_or_skip

# A service that proves each real start independently of drover: it appends a line to its
# journal (fsynced) every time it starts, then idles until it is stopped.
JOURNALED_SERVICE = textwrap.dedent(
    """
    import os, sys, time
    with open(sys.argv[1], "a") as journal:
        journal.write(f"start {os.getpid()}\\n")
        journal.flush()
        os.fsync(journal.fileno())
    while True:
        time.sleep(3600)
    """
)


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A nats-server as `drover dev` runs it: operator mode (an authority of this test's own)
    and TLS with a certificate of a local CA; tests/busauth.py gives credentials for it."""
    security = BusSecurity.local(tmp_path / "bus")
    server = EmbeddedNats(tmp_path / "nats", security=security)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL for the session; each test that uses it gets a database of its own."""
    cluster = start_or_skip()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty system of record: SQLite, and PostgreSQL (tests marked `postgres`)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'drover.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.new_database()


@pytest.fixture
def journaled_service(tmp_path: Path) -> Callable[[str], tuple[list[str], Path]]:
    """Make a command for a service that journals its starts; returns (argv, journal path)."""
    script = tmp_path / "journaled_service.py"
    script.write_text(JOURNALED_SERVICE)

    def make(name: str) -> tuple[list[str], Path]:
        journal = tmp_path / f"{name}.journal"
        # -S: no site-packages, so no coverage start-up hook inside the service under test.
        return [sys.executable, "-S", str(script), str(journal)], journal

    return make


def starts(journal: Path) -> list[str]:
    """The pids of every real start the journal recorded."""
    if not journal.exists():
        return []
    return [line.split()[1] for line in journal.read_text().splitlines() if line]


async def eventually(
    check: Callable[[], object], timeout: float = 15.0, interval: float = 0.05
) -> None:
    """Wait until `check()` is truthy (sync or async), or fail with what it last returned."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    last: object = None
    while loop.time() < end:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return
        await asyncio.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s; last value: {last!r}")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """A real OpenSSH sshd (tests/sshd.py) on a free loopback port, stopped at the end."""
    server = start_sshd_or_skip(tmp_path / "sshd")
    try:
        yield server
    finally:
        server.stop()
