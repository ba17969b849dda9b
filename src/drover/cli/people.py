"""`drover login`, `drover whoami`, `drover user …` and `drover token …`.

`drover user add … --database URL` writes to the system of record directly, with no server and
no token: that is how the first admin of a new install is made (whoever may write the database
may do anything anyway). Every other command goes through the API as the caller.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drover.cli import options, render
from drover.cli.client import ApiClient, CliError, os_user
from drover.cli.credentials import TOKEN_ENV, store_token, token_file

if TYPE_CHECKING:
    from drover.server.auth.settings import AuthSettings

ROLES = ("viewer", "operator", "approver", "admin")


def login(server_url: str, name: str | None, password_stdin: bool, expires_in_days: int) -> None:
    """Sign in with a password, make an API token and keep it for the next commands."""
    who = name or os_user()
    password = read_password(password_stdin, f"password for {who}: ")
    client = ApiClient(server_url, anonymous=True)
    session, _ = client.login(who, password)
    body = {"name": f"cli@{_hostname()}", "expires_in_days": expires_in_days}
    created = client.post("/api/v1/tokens", body, headers=session)
    client.post("/api/v1/logout", {}, headers=session)
    path = token_file()
    store_token(path, created["secret"])
    print(f"signed in as {who}; token {created['id']} (until {created['expires_at']}) in {path}")
    if TOKEN_ENV in os.environ:
        print(f"note: {TOKEN_ENV} is set and is used before that file", file=sys.stderr)


def whoami(server_url: str, as_json: bool) -> None:
    found = ApiClient(server_url).get("/api/v1/whoami")
    if as_json:
        print(json.dumps(found, indent=2))
        return
    grants = ", ".join(_describe(g) for g in found["grants"]) or "none"
    print(f"{found['name']} (via {found['via']})")
    print(f"groups: {', '.join(found['groups']) or 'none'}")
    print(f"grants: {grants}")


def user_add(
    server_url: str,
    name: str,
    role: str | None,
    scopes: list[str],
    groups: list[str],
    password_stdin: bool,
    database: str | None,
) -> None:
    grants = grants_of(role, scopes)
    password = read_password(True, "") if password_stdin else None
    if database is not None:
        _add_user_to_database(database, name, grants, groups, password)
    else:
        body = {"name": name, "grants": grants, "groups": groups, "password": password}
        ApiClient(server_url).post("/api/v1/users", body)
    shown = ", ".join(_describe(g) for g in grants) or "no direct grants"
    print(f"user {name} added: {shown}" + (f"; groups {', '.join(groups)}" if groups else ""))


def user_passwd(server_url: str, name: str | None, password_stdin: bool) -> None:
    """Set your own password: sign in with the current one, then set the new one. A password
    an admin set (a new account, a reset) is not yours alone, and your approvals do not count
    until you set one yourself. With --password-stdin: the current one, then the new one, each
    on a line of its own."""
    who = name or os_user()
    current = read_password(password_stdin, f"current password for {who}: ")
    new = read_password(password_stdin, "new password: ")
    if not password_stdin and read_password(False, "new password again: ") != new:
        raise CliError("the new passwords differ; nothing changed", 2)
    client = ApiClient(server_url, anonymous=True)
    try:
        session, _ = client.login(who, current)
        # Through the session just opened, so only whoever knows the current password may set
        # a new one; the server records it as set by the user themself.
        client._call("PATCH", f"/api/v1/users/{who}", json={"password": new}, headers=session)
    finally:
        client.close()
    print(f"password of {who} changed; sign in again (drover login) for a new token")


def user_list(server_url: str, as_json: bool) -> None:
    found = ApiClient(server_url).get("/api/v1/users")
    if as_json:
        print(json.dumps(found, indent=2))
        return
    rows = [
        [
            u["name"],
            u["source"],
            ", ".join(_describe(g) for g in u["grants"]) or "-",
            ", ".join(u["groups"]) or "-",
            "disabled" if u["disabled_at"] else ("password" if u["has_password"] else "tokens"),
        ]
        for u in found
    ]
    render.console().print(
        render.titled_table("users", ["user", "source", "grants", "groups", "signs in"], rows)
    )


def user_remove(server_url: str, name: str) -> None:
    client = ApiClient(server_url)
    source = client.get(f"/api/v1/users/{name}")["source"]
    client.delete(f"/api/v1/users/{name}")
    if source == "oidc":
        # Deleted, the provider's next sign-in would make it anew.
        print(f"user {name} (OIDC) disabled, not removed: signing in again is refused")
    else:
        print(f"user {name} removed, with its tokens and sessions")


def token_create(
    server_url: str, name: str, expires_in_days: int, user: str | None, as_json: bool
) -> None:
    body: dict[str, Any] = {"name": name, "expires_in_days": expires_in_days}
    if user is not None:
        body["user"] = user
    created = ApiClient(server_url).post("/api/v1/tokens", body)
    if as_json:
        print(json.dumps(created, indent=2))
        return
    print(created["secret"])
    print(
        f"token {created['id']} for {created['user']}, until {created['expires_at']}: "
        "the secret above is shown this once",
        file=sys.stderr,
    )


def token_list(server_url: str, user: str | None, everyone: bool, as_json: bool) -> None:
    params = {"user": "*"} if everyone else ({"user": user} if user else {})
    found = ApiClient(server_url).get("/api/v1/tokens", **params)
    if as_json:
        print(json.dumps(found, indent=2))
        return
    rows = [
        [
            t["id"],
            t["user"],
            t["name"],
            "revoked" if t["revoked_at"] else f"until {t['expires_at']}",
            t["last_used_at"] or "never",
        ]
        for t in found
    ]
    render.console().print(
        render.titled_table("tokens", ["id", "user", "name", "valid", "last used"], rows)
    )


def token_revoke(server_url: str, token_id: str) -> None:
    ApiClient(server_url).delete(f"/api/v1/tokens/{token_id}")
    print(f"token {token_id} revoked")


def grants_of(role: str | None, scopes: list[str]) -> list[dict[str, Any]]:
    """`--role operator --scope app=shop,env=staging` as the API's grants (one per scope)."""
    if role is None:
        if scopes:
            raise CliError("--scope needs --role: the role it limits", 2)
        return []
    if role not in ROLES:
        raise CliError(f"--role {role!r}: expected one of {', '.join(ROLES)}", 2)
    if not scopes:
        return [{"role": role}]
    return [{"role": role, **_scope(scope)} for scope in scopes]


def _scope(value: str) -> dict[str, list[str]]:
    keys = {"app": "applications", "env": "environments"}
    found: dict[str, list[str]] = {}
    for part in value.split(","):
        key, sep, glob = part.strip().partition("=")
        if not sep or key not in keys or not glob:
            raise CliError(
                f"--scope {value!r}: expected app=GLOB, env=GLOB or app=GLOB,env=GLOB", 2
            )
        found.setdefault(keys[key], []).append(glob)
    return found


def read_password(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        try:
            password = getpass.getpass(prompt)
        except EOFError as err:
            raise CliError("no password given (use --password-stdin to pipe one)", 2) from err
    if not password:
        raise CliError("an empty password", 2)
    return password


def _describe(grant: dict[str, Any]) -> str:
    text = str(grant["role"])
    if grant.get("applications", ["*"]) != ["*"]:
        text += " on " + ",".join(grant["applications"])
    if grant.get("environments", ["*"]) != ["*"]:
        text += " in " + ",".join(grant["environments"])
    return text


def _hostname() -> str:
    return socket.gethostname().split(".", 1)[0]


def _add_user_to_database(
    url: str, name: str, grants: list[dict[str, Any]], groups: list[str], password: str | None
) -> None:
    """The bootstrap: straight into the database, on the record as `local:<os user>`."""
    url = options.database_url(url)
    from drover.model.access import Grant
    from drover.ops.clock import SystemClock
    from drover.server.auth.accounts import Accounts
    from drover.server.auth.passwords import Passwords
    from drover.server.errors import ServerError
    from drover.store.audit import ORIGIN, Origin
    from drover.store.database import open_database

    async def add() -> None:
        engine = await open_database(url)
        token = ORIGIN.set(Origin("local", uuid.uuid4().hex))
        try:
            accounts = Accounts(engine, SystemClock(), Passwords())
            await accounts.add_user(
                name,
                by=f"local:{os_user()}",
                grants=[Grant.from_json(g) for g in grants],
                groups=groups,
                password=password,
            )
        finally:
            ORIGIN.reset(token)
            await engine.dispose()

    try:
        asyncio.run(add())
    except ServerError as err:
        raise CliError(err.message, 2) from err
    except OSError as err:
        raise CliError(f"--database {url}: {err}", 1) from err


@dataclass(frozen=True)
class AuthOptions:
    """The server's authentication flags, as given (checked by `auth_settings`)."""

    public_url: str | None = None
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret_file: Path | None = None
    oidc_username_claim: str = "preferred_username"
    oidc_groups_claim: str = "groups"
    trusted_proxies: tuple[str, ...] = ()  # --trusted-proxy (repeatable)


def auth_settings(given: AuthOptions) -> AuthSettings:
    """The server's AuthSettings; a CliError (exit 2) for flags that cannot work together."""
    from drover.server.auth.settings import AuthSettings, OidcSettings, issuer_problem

    if given.public_url is not None:
        _http_url("--public-url", given.public_url)
    proxies = tuple(_proxy(p) for p in given.trusted_proxies)
    oidc_flags = (given.oidc_issuer, given.oidc_client_id, given.oidc_client_secret_file)
    if not any(oidc_flags):
        return AuthSettings(public_url=given.public_url, trusted_proxies=proxies)
    if given.oidc_issuer is None or given.oidc_client_id is None:
        raise CliError("OIDC needs --oidc-issuer and --oidc-client-id", 2)
    if given.oidc_client_secret_file is None:
        raise CliError("OIDC needs --oidc-client-secret-file (the secret, in a file)", 2)
    if given.public_url is None:
        raise CliError("OIDC needs --public-url: where the provider sends people back", 2)
    _http_url("--oidc-issuer", given.oidc_issuer)
    if problem := issuer_problem(given.oidc_issuer):
        raise CliError(f"--oidc-issuer {problem}", 2)
    try:
        secret = given.oidc_client_secret_file.read_text().strip()
    except OSError as err:
        raise CliError(
            f"--oidc-client-secret-file {given.oidc_client_secret_file}: {err.strerror or err}", 2
        ) from err
    if not secret:
        raise CliError(f"--oidc-client-secret-file {given.oidc_client_secret_file}: empty", 2)
    oidc = OidcSettings(
        issuer=given.oidc_issuer,
        client_id=given.oidc_client_id,
        client_secret_file=given.oidc_client_secret_file.resolve(),
        username_claim=given.oidc_username_claim,
        groups_claim=given.oidc_groups_claim,
    )
    return AuthSettings(public_url=given.public_url, oidc=oidc, trusted_proxies=proxies)


def _proxy(value: str) -> str:
    """A --trusted-proxy: an IP address or network (what uvicorn's forwarded_allow_ips takes)."""
    import ipaddress

    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError as err:
        raise CliError(f"--trusted-proxy {value!r}: expected an IP address or network", 2) from err


def _http_url(option: str, value: str) -> None:
    if not (value.startswith(("http://", "https://")) and len(value) > len("https://")):
        raise CliError(f"{option} {value!r}: expected an http(s) URL", 2)
