from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import Sshd, start_or_skip

pytestmark = pytest.mark.ssh


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    server = start_or_skip(tmp_path / "sshd")
    try:
        yield server
    finally:
        server.stop()
