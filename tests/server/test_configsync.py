"""Config sync survives what it cannot foresee."""

from __future__ import annotations

from pathlib import Path

import pytest

from drover.config.errors import ConfigSourceError
from drover.config.schema import FleetConfig
from drover.config.source import FolderSource, Snapshot
from drover.ops.clock import SystemClock
from drover.server.configsync import ConfigSync


class FlakySource:
    description = "flaky"

    def __init__(self, inner: FolderSource) -> None:
        self.inner = inner
        self.failure: Exception | None = None

    def read(self) -> Snapshot:
        if self.failure is not None:
            raise self.failure
        return self.inner.read()


async def _changed(config: FleetConfig) -> None:
    return None


async def test_an_unexpected_error_is_reported_and_the_last_good_config_kept(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text("groups:\n  all: {}\n")
    source = FlakySource(FolderSource(tmp_path))
    sync = ConfigSync(source, SystemClock(), 1.0, _changed)
    await sync.poll_once()
    assert sync.active is not None
    good = sync.active.revision

    source.failure = RuntimeError("disk on fire")
    await sync.poll_once()
    assert sync.active.revision == good
    assert sync.last_error is not None and "disk on fire" in sync.last_error.message

    source.failure = ConfigSourceError("flaky", "gone")
    await sync.poll_once()
    assert sync.last_error is not None and sync.last_error.message == "flaky: gone"

    source.failure = None
    await sync.poll_once()
    assert sync.last_error is None  # readable again, same revision
    assert sync.active.revision == good


async def test_a_revision_that_breaks_the_loader_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.yaml").write_text("groups:\n  all: {}\n")
    sync = ConfigSync(FolderSource(tmp_path), SystemClock(), 1.0, _changed)
    await sync.poll_once()
    good = sync.active

    def broken_loader(snapshot: Snapshot) -> FleetConfig:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("drover.server.configsync.load_snapshot", broken_loader)
    (tmp_path / "b.yaml").write_text("groups:\n  more: {}\n")
    await sync.poll_once()
    assert sync.active == good
    assert sync.last_error is not None
    assert "RecursionError" in sync.last_error.message
