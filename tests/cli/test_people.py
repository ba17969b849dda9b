"""People and tokens from the command line, as an operator sets up a new install: the first
admin straight into the database, then login, users, tokens — each mistake a clear message with
exit code 2, never a traceback."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drover.bus.embedded import EmbeddedNats
from tests.harness import Fleet, fleet_of

DROVER = str(Path(sys.executable).parent / "drover")
PASSWORD = "correct horse battery"
CONFIG = {
    "apps.yaml": (
        "applications:\n  shop:\n    environment: test\n    hosts: [h1]\n    services:\n"
        "      web: {command: [sleep, '3600']}\n"
    )
}


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, CONFIG) as running:
        yield running


def database(tmp: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp / 'drover.db'}"


async def drover(
    tmp: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`drover ARGS` with a home of its own (nothing found or written in the real one)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    home = {"HOME": str(tmp / "home"), "XDG_CONFIG_HOME": str(tmp / "home" / ".config")}
    return await asyncio.to_thread(
        subprocess.run,
        [DROVER, *args],
        input=stdin,
        env={**clean, **home, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert (result.returncode, result.stdout) == (2, ""), result
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


async def test_a_new_install_from_the_first_admin_to_users_and_tokens(
    fleet: Fleet, tmp_path: Path
) -> None:
    # The first admin, before any server runs: straight into the database.
    made = await drover(
        tmp_path, "user", "add", "root", "--role", "admin", "--password-stdin",
        "--database", database(tmp_path), stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert ok(made).strip() == "user root added: admin"
    again = await drover(tmp_path, "user", "add", "root", "--database", database(tmp_path))
    refused(again, "user 'root' exists already")

    await fleet.start_server(database_url=database(tmp_path))
    url = fleet.base_url

    # Sign in: the token lands in ~/.config/drover/token, for the owner's eyes only.
    login = await drover(
        tmp_path, "login", "--server", url, "--name", "root", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    token_file = tmp_path / "home" / ".config" / "drover" / "token"
    assert "signed in as root; token " in ok(login) and str(token_file) in login.stdout
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert token_file.read_text().startswith("drv_")
    assert ok(await drover(tmp_path, "whoami", "--server", url)).splitlines() == [
        "root (via token)",
        "groups: none",
        "grants: admin",
    ]

    # A user with a scoped role, and a token for a job of theirs.
    added = await drover(
        tmp_path, "user", "add", "olga", "--role", "operator", "--scope", "app=shop,env=test",
        "--group", "team-shop", "--server", url,
    )  # fmt: skip
    assert ok(added).strip() == "user olga added: operator on shop in test; groups team-shop"
    listed = ok(await drover(tmp_path, "user", "list", "--server", url))
    assert "olga" in listed and "operator on shop in test" in listed and "team-shop" in listed
    created = await drover(
        tmp_path, "token", "create", "--user", "olga", "--name", "ci", "--expires-in", "7",
        "--server", url,
    )  # fmt: skip
    secret = ok(created).strip()
    assert secret.startswith("drv_") and "shown this once" in created.stderr

    as_olga = {"DROVER_TOKEN": secret}
    assert ok(await drover(tmp_path, "whoami", "--server", url, env=as_olga)).startswith("olga")
    refused(
        await drover(tmp_path, "user", "list", "--server", url, env=as_olga),
        "error: olga may not admin: needs admin without a scope",
    )
    ok(await drover(tmp_path, "status", "--server", url, env=as_olga))

    tokens = ok(await drover(tmp_path, "token", "list", "--user", "olga", "--server", url))
    [token_id] = [line.split()[1] for line in tokens.splitlines() if " ci " in line]
    assert ok(await drover(tmp_path, "token", "revoke", token_id, "--server", url)).strip() == (
        f"token {token_id} revoked"
    )
    refused(
        await drover(tmp_path, "whoami", "--server", url, env=as_olga),
        f"API token {token_id} was revoked (sign in with `drover login --server URL`",
    )
    assert ok(await drover(tmp_path, "user", "remove", "olga", "--server", url)).strip() == (
        "user olga removed, with its tokens and sessions"
    )


async def test_the_cli_says_clearly_when_it_cannot_sign_in(fleet: Fleet, tmp_path: Path) -> None:
    await fleet.start_server()
    url = fleet.base_url
    refused(
        await drover(tmp_path, "status", "--server", url),
        "authentication required: send 'Authorization: Bearer <token>'",
    )
    refused(
        await drover(
            tmp_path,
            "login",
            "--server",
            url,
            "--name",
            "admin",
            "--password-stdin",
            stdin="wrong password\n",
        ),
        "error: login refused: wrong name or password",
    )
    refused(
        await drover(tmp_path, "status", "--server", url, env={"DROVER_TOKEN_FILE": "/nope"}),
        "DROVER_TOKEN_FILE=/nope: no such file",
    )
    admin = {"DROVER_TOKEN": fleet.admin_token}
    refused(
        await drover(tmp_path, "user", "add", "x", "--scope", "app=shop", "--server", url),
        "--scope needs --role",
    )
    refused(
        await drover(tmp_path, "user", "add", "x", "--role", "boss", "--server", url, env=admin),
        "--role 'boss': expected one of viewer, operator, approver, admin",
    )
    refused(
        await drover(
            tmp_path,
            "user",
            "add",
            "x",
            "--role",
            "viewer",
            "--scope",
            "ap=shop",
            "--server",
            url,
            env=admin,
        ),
        "expected app=GLOB, env=GLOB",
    )
    refused(
        await drover(
            tmp_path,
            "user",
            "add",
            "x",
            "--password-stdin",
            "--server",
            url,
            env=admin,
            stdin="short\n",
        ),
        "a password needs at least 10 characters",
    )


async def test_the_token_in_the_environment_comes_before_the_files(
    fleet: Fleet, tmp_path: Path
) -> None:
    await fleet.start_server()
    url = fleet.base_url
    named = tmp_path / "named-token"
    named.write_text("drv_not_a_token\n")
    default = tmp_path / "home" / ".config" / "drover" / "token"
    default.parent.mkdir(parents=True)
    default.write_text(fleet.admin_token)

    assert ok(await drover(tmp_path, "whoami", "--server", url)).startswith("admin")
    refused(
        await drover(tmp_path, "whoami", "--server", url, env={"DROVER_TOKEN_FILE": str(named)}),
        "unknown API token",
    )
    both = {"DROVER_TOKEN_FILE": str(named), "DROVER_TOKEN": fleet.admin_token}
    assert ok(await drover(tmp_path, "whoami", "--server", url, env=both)).startswith("admin")


async def test_drover_user_passwd_makes_a_password_your_own(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from drover.cli import people
    from drover.cli.client import CliError

    await fleet.start_server()
    assert fleet.http is not None
    made = await fleet.http.post(
        "/api/v1/users",
        json={"name": "pat", "grants": [{"role": "approver"}], "password": PASSWORD},
    )
    assert made.json()["password_set_by"] == "admin"
    monkeypatch.setattr(sys, "stdin", io.StringIO("wrong password\nmy own password\n"))
    with pytest.raises(CliError, match="login refused: wrong name or password"):
        await asyncio.to_thread(people.user_passwd, fleet.base_url, "pat", True)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{PASSWORD}\nshort\n"))
    with pytest.raises(CliError, match="a password needs at least 10 characters"):
        await asyncio.to_thread(people.user_passwd, fleet.base_url, "pat", True)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{PASSWORD}\nmy own password\n"))
    await asyncio.to_thread(people.user_passwd, fleet.base_url, "pat", True)
    changed = (await fleet.http.get("/api/v1/users/pat")).json()
    assert changed["password_set_by"] == "pat" and changed["password_set_at"] is not None


def test_server_flags_refuse_an_issuer_without_tls_and_odd_proxies(tmp_path: Path) -> None:
    from drover.cli.client import CliError
    from drover.cli.people import AuthOptions, auth_settings

    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    oidc = AuthOptions(
        public_url="https://drover.example.com",
        oidc_issuer="http://id.example.com/realms/ops",
        oidc_client_id="drover",
        oidc_client_secret_file=secret,
    )
    with pytest.raises(CliError, match=r"must be an https:// URL \(http only on loopback\)"):
        auth_settings(oidc)
    local = auth_settings(AuthOptions(**{**oidc.__dict__, "oidc_issuer": "http://127.0.0.1:9"}))
    assert local.oidc is not None
    proxies = auth_settings(AuthOptions(trusted_proxies=("10.0.0.1", "192.168.0.0/24")))
    assert proxies.trusted_proxies == ("10.0.0.1/32", "192.168.0.0/24")
    with pytest.raises(CliError, match=r"--trusted-proxy 'proxy\.example': expected an IP"):
        auth_settings(AuthOptions(trusted_proxies=("proxy.example",)))
