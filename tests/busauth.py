"""Bus credentials for tests: what a test that talks to the secured nats-server directly uses.

The `nats_server` fixture runs nats-server as `drover dev` does: it trusts a bus authority made
for the test and speaks TLS with a certificate of a local CA. Tests get credentials from that
authority here — the superuser (every subject) for a test that plays a part drover has no
identity for, or an agent's own, written where the agent reads them, as the server's enrollment
would (`enroll_directly`)."""

from __future__ import annotations

import base64
import json
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from drover.agent.files import write_atomically
from drover.bus import subjects, topology
from drover.bus.connection import Bus, BusSettings
from drover.bus.embedded import BusSecurity, EmbeddedNats
from drover.bus.trust import permissions, signing
from drover.bus.trust.credentials import BusIdentity
from drover.bus.trust.jwt import Permissions
from drover.bus.trust.keys import KeyPair, Kind
from drover.ops.counters import Counters

EVERYTHING = Permissions(publish=(">",), subscribe=(">",))


def identity(nats: EmbeddedNats, name: str, rights: Permissions = EVERYTHING) -> BusIdentity:
    assert nats.security is not None
    key = KeyPair.create(Kind.USER)
    token = nats.security.authority.issue_user(name, key.public_key, rights, None)
    return BusIdentity(key, lambda: token)


def bus_settings(
    nats: EmbeddedNats, name: str = "test", rights: Permissions = EVERYTHING, **more: Any
) -> BusSettings:
    """Settings of a Bus that may do what `rights` allow (default: everything)."""
    settings = BusSettings(url=nats.url, name=name, **more)
    if nats.security is None:
        return settings
    return replace(
        settings,
        identity=identity(nats, name, rights),
        tls_ca=nats.security.certificate.ca_file,
    )


def connect_options(nats: EmbeddedNats, rights: Permissions = EVERYTHING) -> dict[str, Any]:
    """Keyword arguments of `nats.connect` for a client that may do what `rights` allow."""
    options: dict[str, Any] = {"servers": [nats.url]}
    if nats.security is None:
        return options
    who = identity(nats, "test", rights)
    context = ssl.create_default_context(cafile=str(nats.security.certificate.ca_file))
    options |= {
        "tls": context,
        "user_jwt_cb": lambda: who.user_jwt().encode(),
        "signature_cb": lambda nonce: base64.b64encode(who.key.sign(nonce.encode())),
    }
    return options


async def enroll_directly(nats: EmbeddedNats, host: str, data_dir: Path) -> None:
    """Enroll `host` for an agent in `data_dir` without a drover server: its key, its
    credentials and its consumers, as the server's enrollment makes them."""
    assert nats.security is not None
    write_enrollment(nats.security, host, data_dir, nats.url)
    await make_consumers(nats, host)


def write_enrollment(security: BusSecurity, host: str, data_dir: Path, nats_url: str) -> None:
    """What `drover agent enroll` leaves in `data_dir`, made from `security`'s authority."""
    authority = security.authority
    directory = data_dir / "identity"
    key_file = directory / "host.nk"
    if key_file.exists():
        key = KeyPair(key_file.read_bytes().strip())
    else:
        key = KeyPair.create(Kind.USER)
        write_atomically(key_file, key.seed + b"\n", mode=0o600)
    token = authority.issue_user(host, key.public_key, permissions.agent(host), None)
    write_atomically(directory / "host.jwt", token.encode(), mode=0o600)
    write_atomically(directory / "ca.pem", security.certificate.ca_file.read_bytes())
    saved = {
        "host": host,
        "server_url": "http://127.0.0.1:9",  # none: nothing renews these credentials
        "nats_urls": [nats_url],
        "action_signer": authority.signer.public_key,
        "has_ca": True,
        "jetstream_domain": subjects.JS_DOMAIN,  # as the server's enrollment gives it
    }
    write_atomically(directory / "enrollment.json", json.dumps(saved).encode())


async def make_consumers(nats: EmbeddedNats, host: str) -> None:
    """The streams and `host`'s consumers, as the server makes them."""
    bus = Bus(bus_settings(nats, "test-enroll"), Counters())
    await bus.connect()
    try:
        await topology.ensure(bus.js)
        await topology.ensure_host(bus.js, host)
    finally:
        await bus.close()


async def superuser_client(nats_server: EmbeddedNats) -> Client:
    """A NATS client that may do anything: for a test playing a part drover has no identity
    for (a forger, a hand-made report, a look at a stream's state)."""
    return await nats.connect(**connect_options(nats_server))


def signed(nats_server: EmbeddedNats, payload: bytes) -> dict[str, str]:
    """The headers of `payload` signed as the server signs actions."""
    assert nats_server.security is not None
    return signing.sign(nats_server.security.authority.signer, payload)


def write_creds(nats_server: EmbeddedNats, path: Path, rights: Permissions = EVERYTHING) -> None:
    """A NATS credentials file (JWT and seed, as `nsc` writes them) for another process."""
    who = identity(nats_server, path.stem, rights)
    text = (
        f"-----BEGIN NATS USER JWT-----\n{who.user_jwt()}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{who.key.seed.decode()}\n------END USER NKEY SEED------\n"
    )
    write_atomically(path, text.encode(), mode=0o600)
