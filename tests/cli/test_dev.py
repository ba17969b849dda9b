"""`drover dev` as a user runs it: it comes up, the CLI drives it, and SIGTERM leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from drover.bus.embedded import free_port
from tests.harness import write_tree

DROVER = str(Path(sys.executable).parent / "drover")

CONFIG = {
    "groups.yaml": "groups:\n  all: {hosts: ['*']}\n",
    "apps.yaml": (
        "applications:\n"
        "  shop:\n    groups: [all]\n    services:\n"
        "      web: {command: [sleep, '3600']}\n"
        "      worker: {command: [sleep, '3601']}\n"
        "  billing:\n    groups: [all]\n    services:\n"
        "      api: {command: [sleep, '3602'], target: stopped}\n"
    ),
}


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# The token file each `drover dev` writes, by its URL: the CLI finds it as its output says.
TOKEN_FILES: dict[str, Path] = {}


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    signed_in = {"DROVER_TOKEN_FILE": str(TOKEN_FILES[url])} if url in TOKEN_FILES else {}
    return subprocess.run(
        [DROVER, *args, "--server", url],
        # as wide as a terminal, not a pipe's 80
        env={**os.environ, "COLUMNS": "160", **signed_in},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_until_up(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"drover dev exited with {proc.returncode}")
        token_file = TOKEN_FILES[url]
        if not token_file.exists():
            time.sleep(0.2)
            continue
        auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        try:
            apps = httpx.get(f"{url}/api/v1/applications", headers=auth, timeout=2).json()
            if apps and all(p["status"] for a in apps for s in a["services"] for p in s["hosts"]):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("drover dev did not come up")


def spawn_dev(tmp_path: Path) -> tuple[str, subprocess.Popen[str]]:
    """`drover dev` on a config and data dir of its own; its URL and process."""
    write_tree(tmp_path / "config", CONFIG)
    port = free_port()
    with (tmp_path / "dev.log").open("w") as log:
        proc = subprocess.Popen(
            [
                DROVER,
                "dev",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(tmp_path / "data"),
                "--config",
                str(tmp_path / "config"),
                "--host-id",
                "devhost",
                "--leaf-port",  # outposts may link to it (docs/operations.md)
                str(free_port()),
            ],
            # A file, not a pipe: nobody reads a pipe while it runs, and a full pipe would block it.
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    TOKEN_FILES[url] = tmp_path / "data" / "token"
    return url, proc


def stopped(proc: subprocess.Popen[str], tmp_path: Path, timeout: float = 90) -> int:
    """The exit code once it has stopped; a failure showing its log if it does not."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log = (tmp_path / "dev.log").read_text()
        pytest.fail(f"drover dev did not stop within {timeout}s; its log:\n{log[-5000:]}")


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    url, proc = spawn_dev(tmp_path)
    try:
        wait_until_up(url, proc)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.slow
def test_drover_dev_comes_up_is_driven_by_the_cli_and_leaves_no_process(
    dev: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, proc = dev
    status = cli(url, "status", "--json")
    assert status.returncode == 0, status.stderr
    rows = {
        (a["name"], s["name"]): s["hosts"][0]["status"]
        for a in json.loads(status.stdout)
        for s in a["services"]
    }
    assert rows == {
        ("billing", "api"): "stopped",
        ("shop", "web"): "running",
        ("shop", "worker"): "running",
    }

    restart = cli(url, "action", "restart", "shop/web")
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert "succeeded" in restart.stdout and "shop/web: restarted" in restart.stdout

    hosts = cli(url, "hosts")
    assert hosts.returncode == 0 and "devhost" in hosts.stdout

    # It made an admin and says how to sign in; the secrets are for the owner's eyes only.
    data = tmp_path / "data"
    assert data.stat().st_mode & 0o777 == 0o700  # the database holds hashes and the audit
    for secret in (data / "token", data / "admin-password"):
        assert secret.stat().st_mode & 0o777 == 0o600
    said = (tmp_path / "dev.log").read_text()
    assert f"export DROVER_TOKEN_FILE={data / 'token'}" in said
    assert "outposts' leaf node links taken on 127.0.0.1:" in said
    password = (data / "admin-password").read_text().strip()
    signed_in = httpx.post(f"{url}/api/v1/login", json={"name": "admin", "password": password})
    assert signed_in.status_code == 200, signed_in.text

    children = descendants(proc.pid)
    assert len(children) >= 3  # nats-server and the two running services
    proc.send_signal(signal.SIGTERM)
    assert stopped(proc, tmp_path) == 0
    output = (tmp_path / "dev.log").read_text()
    assert "drover dev stopped" in output
    assert [pid for pid in children if alive(pid)] == []


@pytest.mark.slow
def test_the_cli_says_clearly_what_is_wrong_and_exits_2(
    dev: tuple[str, subprocess.Popen[str]],
) -> None:
    url, _ = dev
    for args, message in [
        (("action", "restart", "nope"), "no application 'nope'"),
        (("action", "restart", "shop/db"), "application 'shop' has no service 'db'"),
        (
            ("action", "stop", "shop", "--host", "elsewhere"),
            "application 'shop' does not run on host 'elsewhere'",
        ),
    ]:
        result = cli(url, *args)
        assert (result.returncode, result.stdout) == (2, ""), result
        assert result.stderr.strip() == f"error: {message}"
        assert "Traceback" not in result.stderr


def test_an_unreachable_server_is_a_clear_error() -> None:
    result = cli(f"http://127.0.0.1:{free_port()}", "status")
    assert result.returncode == 1
    assert "cannot reach the drover server" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_listen_address_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [DROVER, "dev", "--listen", "localhost", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "expected HOST:PORT" in result.stderr


def test_drover_dev_ends_cleanly_on_sigint_too(tmp_path: Path) -> None:
    url, proc = spawn_dev(tmp_path)
    try:
        wait_until_up(url, proc)
        children = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGINT)
        assert stopped(proc, tmp_path) == 0
        assert [pid for pid in children if alive(pid)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.slow
def test_an_override_is_set_listed_and_cleared_from_the_cli(
    dev: tuple[str, subprocess.Popen[str]],
) -> None:
    url, _ = dev
    set_ = cli(
        url,
        "override",
        "set",
        "shop/web",
        "--status",
        "stopped",
        "--reason",
        "disk swap",
        "--for",
        "30m",
        "--json",
    )
    assert set_.returncode == 0, set_.stderr
    [created] = json.loads(set_.stdout)
    assert (created["service"], created["status"], created["reason"]) == (
        "web",
        "stopped",
        "disk swap",
    )

    def web_status() -> str:
        apps = json.loads(cli(url, "status", "--json").stdout)
        shop = next(a for a in apps if a["name"] == "shop")
        web = next(s for s in shop["services"] if s["name"] == "web")
        return str(web["hosts"][0]["status"])

    end = time.monotonic() + 30
    while web_status() != "stopped" and time.monotonic() < end:
        time.sleep(0.2)
    assert web_status() == "stopped"

    listed = cli(url, "override", "list")
    assert (
        listed.returncode == 0 and created["id"] in listed.stdout and "disk swap" in listed.stdout
    )
    cleared = cli(url, "override", "clear", created["id"])
    assert (cleared.returncode, cleared.stdout.strip()) == (0, f"override {created['id']} cleared")
    again = cli(url, "override", "clear", created["id"])
    assert again.returncode == 2 and "no override" in again.stderr

    bad = cli(
        url, "override", "set", "shop", "--status", "stopped", "--reason", "x", "--for", "soon"
    )
    assert bad.returncode == 2 and "expected a duration" in bad.stderr
