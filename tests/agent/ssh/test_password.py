"""A target reached with a password (a secret reference) instead of a key, against a real sshd
that checks it against the system's password database, as a user of its own."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drover.agent.ssh import remote
from drover.agent.ssh.connections import SshPool, SshUnavailable
from tests.sshd import Sshd, start_or_skip

pytestmark = pytest.mark.ssh

USER = "drover-sshtest"


@pytest.fixture
def user_with_password() -> Iterator[str]:
    """A user of the test's own with a fresh password: needs root (and is CI's)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("needs root and useradd in CI")
        pytest.skip("needs root and useradd, to make a user with a password")
    password = secrets.token_urlsafe(16)
    subprocess.run(["userdel", USER], capture_output=True, check=False)
    # No home directory: sshd says so on standard error before the command starts.
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", USER], check=True)
    subprocess.run(["chpasswd"], input=f"{USER}:{password}\n", text=True, check=True)
    try:
        yield password
    finally:
        subprocess.run(["userdel", USER], capture_output=True, check=False)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    server = start_or_skip(tmp_path / "sshd", passwords=True)
    try:
        yield server
    finally:
        server.stop()


async def test_a_password_from_a_secret_lets_the_target_in_and_a_wrong_one_does_not(
    sshd: Sshd,
    user_with_password: str,
    monkeypatch: pytest.MonkeyPatch,
    pools: Callable[..., SshPool],
) -> None:
    monkeypatch.setenv("NAS_PASSWORD", user_with_password)
    monkeypatch.setenv("WRONG_PASSWORD", "not-" + user_with_password)
    pool = pools(2)
    target = sshd.target("nas", user=USER, key=None, password="env:NAS_PASSWORD")
    got = bytearray()
    async with pool.session(target) as connection:
        finished = await remote.run(connection, ["id", "-un"], timeout=10, sink=got.extend)
    # sshd's complaint is output, as it came; the pid the prelude says is not.
    said = f"Could not chdir to home directory /home/{USER}: No such file or directory\n{USER}\n"
    assert (finished.exit_code, bytes(got).decode()) == (0, said)
    wrong = sshd.target("other", user=USER, key=None, password="env:WRONG_PASSWORD")
    with pytest.raises(SshUnavailable, match="permission denied"):
        async with pool.session(wrong):
            pass
