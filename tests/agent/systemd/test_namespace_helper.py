"""The namespace helper skips where systemd cannot boot, and fails instead in CI."""

from __future__ import annotations

import pytest

from tests import systemd_namespace
from tests.systemd_namespace import SystemdNamespace, SystemdUnavailable, boot_or_skip


@pytest.fixture
def cannot_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    def boot(timeout: float = 20.0) -> SystemdNamespace:
        raise SystemdUnavailable("needs root")

    monkeypatch.setattr(systemd_namespace.SystemdNamespace, "boot", boot)


@pytest.mark.usefixtures("cannot_boot")
def test_it_skips_with_the_reason_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        boot_or_skip()


@pytest.mark.usefixtures("cannot_boot")
def test_it_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI: needs root"):
        boot_or_skip()
