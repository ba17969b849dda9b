"""Hosts on the bus, from the command line: enrollment tokens, requests waiting for approval,
revocation (admins, through the API); enrolling this host (`drover agent enroll`); and making
the bus authority for a production nats-server (`drover bus init`)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from drover.cli import options, render
from drover.cli.client import ApiClient, CliError


def token_create(server_url: str, expires: str, host: str | None, as_json: bool) -> None:
    body: dict[str, Any] = {"expires_in_s": int(options.duration(expires, "--expires"))}
    if host is not None:
        body["host"] = options.host_id(host)
    created = ApiClient(server_url).post("/api/v1/enrollment-tokens", body)
    if as_json:
        print(json.dumps(created, indent=2))
        return
    print(created["token"])
    only = f" for host {created['host']}" if created["host"] else ""
    print(
        f"enrollment token {created['id']}{only}, once, until {created['expires_at']}: the "
        "secret above is shown this once. On the host: drover agent enroll --server URL "
        "--token TOKEN",
        file=sys.stderr,
    )


def token_list(server_url: str, as_json: bool) -> None:
    found = ApiClient(server_url).get("/api/v1/enrollment-tokens")
    if as_json:
        print(json.dumps(found, indent=2))
        return
    rows = [
        [
            t["id"],
            t["host"] or "any",
            t["created_by"],
            f"used by {t['used_by_host']}" if t["used_at"] else f"until {t['expires_at']}",
        ]
        for t in found
    ]
    render.console().print(
        render.titled_table("enrollment tokens", ["id", "host", "by", "state"], rows)
    )


def keys(server_url: str, state: str | None, as_json: bool) -> None:
    params = {"state": state} if state else {}
    found = ApiClient(server_url).get("/api/v1/enrollments", **params)
    if as_json:
        print(json.dumps(found, indent=2))
        return
    rows = [
        [k["host"], k["state"], k["public_key"], k["source"], k["decided_by"] or ""] for k in found
    ]
    columns = ["host", "state", "key", "from", "decided by"]
    render.console().print(render.titled_table("host keys", columns, rows))


def approve(server_url: str, host: str, public_key: str) -> None:
    ApiClient(server_url).post(f"/api/v1/enrollments/{host}/approve", {"public_key": public_key})
    print(f"host {host} enrolled: it gets its credentials when it next asks")


def reject(server_url: str, host: str, public_key: str) -> None:
    ApiClient(server_url).post(f"/api/v1/enrollments/{host}/reject", {"public_key": public_key})
    print(f"enrollment request of host {host} rejected")


def revoke(server_url: str, host: str) -> None:
    answer = ApiClient(server_url).post(f"/api/v1/hosts/{host}/revoke", {})
    print(f"host {host} revoked ({len(answer['revoked_keys'])} key): it is cut off the bus")


def agent_enroll(
    server_url: str,
    token: str | None,
    host_id: str | None,
    data_dir: Path,
    wait: str,
    ca_file: Path | None,
) -> None:
    from drover.agent.enrollment import EnrollmentRefused, NotEnrolled, enroll
    from drover.model.names import host_id_from_hostname

    host = options.host_id(host_id) or host_id_from_hostname()
    state = options.data_dir(data_dir, "--data-dir")
    patience = timedelta(seconds=options.duration(wait, "--wait"))

    def pending(public_key: str) -> None:
        print(
            f"waiting for an admin to approve host {host} with key\n  {public_key}\n"
            f"(drover hosts approve {host} {public_key})",
            file=sys.stderr,
        )

    verify: bool | str = str(ca_file) if ca_file is not None else True
    try:
        enrolled = asyncio.run(
            enroll(server_url, host, state, token, wait=patience, verify=verify, on_pending=pending)
        )
    except (EnrollmentRefused, NotEnrolled) as err:
        raise CliError(str(err)) from None
    print(f"host {enrolled.host} enrolled; its credentials are in {enrolled.directory}")


def bus_init(directory: Path) -> None:
    from drover.bus.trust.authority import Authority, AuthorityError

    directory = directory.resolve()  # nats-server reads the paths in its config from its own cwd
    if (directory / "operator.nk").exists():
        raise CliError(f"{directory} holds a bus authority already; it is kept as it is", 2)
    try:
        authority = Authority.create(directory)
    except (OSError, AuthorityError) as err:
        raise CliError(f"{directory}: {err}") from None
    conf = directory / "nats-auth.conf"
    conf.write_text(authority.nats_config(directory / "nats-accounts") + "\n")
    print(f"bus authority made in {directory} (keep it secret: whoever holds it owns the bus)")
    # nats-server (2.10–2.15 at least) reads an include relative to the including file, even
    # an absolute path: the file goes beside nats-server's config.
    print(
        f"nats-server: copy {conf} beside its config and write `include nats-auth.conf` there "
        "(docs/operations.md)"
    )
