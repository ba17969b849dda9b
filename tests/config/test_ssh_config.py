"""SSH targets in the config (hosts.<id>.ssh): what the gateway's desired state carries, and
each mistake at its file:line:col."""

from __future__ import annotations

import pytest

from drover.bus.messages import SshTarget
from drover.config.loader import load_files
from drover.server.desired import desired_for_host
from tests.config.test_loader import problems_of

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def hosts(ssh: str, more: str = "") -> bytes:
    return f"hosts:\n  gw-01: {{}}\n  nas-01:\n    ssh:\n{ssh}{more}".encode()


GOOD = (
    "      via: gw-01\n"
    "      user: drover\n"
    f'      host_key: "{KEY}"\n'
    '      key: {secret: "file:/etc/drover/ssh/nas-01"}\n'
)


def test_the_gateway_is_told_its_targets_with_their_credentials_as_references() -> None:
    config = load_files({"hosts.yaml": hosts(GOOD + "      sudo: true\n")}, revision="r1")
    assert desired_for_host(config, "gw-01").targets == [
        SshTarget(
            host="nas-01",
            address="nas-01",
            port=22,
            user="drover",
            host_key=KEY,
            key="file:/etc/drover/ssh/nas-01",
            sudo=True,
        )
    ]
    assert desired_for_host(config, "nas-01").targets == []


@pytest.mark.parametrize(
    ("ssh", "more", "problem"),
    [
        (
            GOOD.replace("via: gw-01", "via: nas-01"),
            "",
            "hosts.yaml:5:12: hosts.nas-01.ssh.via: 'nas-01' is itself",
        ),
        (
            GOOD.replace("via: gw-01", "via: nas-02"),
            "  nas-02:\n    ssh:\n" + GOOD,
            "hosts.yaml:5:12: hosts.nas-01.ssh.via: 'nas-02' is another ssh target, "
            "which runs no agent",
        ),
        (
            GOOD.replace('      key: {secret: "file:/etc/drover/ssh/nas-01"}\n', ""),
            "",
            "hosts.yaml:5:7: hosts.nas-01.ssh: an ssh target needs 'key' or 'password' "
            "(a secret reference)",
        ),
        (
            GOOD.replace(KEY, "AAAA-not-a-key"),
            "",
            "hosts.yaml:7:17: hosts.nas-01.ssh.host_key: expected a public host key as "
            "known_hosts has it",
        ),
        (
            GOOD.replace('{secret: "file:/etc/drover/ssh/nas-01"}', "hunter2"),
            "",
            "hosts.yaml:8:12: hosts.nas-01.ssh.key: a credential is never written into the "
            "config: give where it is, {secret: scheme:reference}",
        ),
    ],
)
def test_a_target_that_cannot_be_reached_as_written_is_refused_at_its_place(
    ssh: str, more: str, problem: str
) -> None:
    [found] = problems_of({"hosts.yaml": hosts(ssh, more)})
    assert found.startswith(problem), found
