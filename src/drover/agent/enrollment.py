"""This host's place on the bus: its key, and what it got when it enrolled.

`drover agent enroll` makes the host's key (an NKEY; the private key never leaves this host),
asks the server to enroll it — with a one-time token, or waiting for an admin's approval — and
keeps what the server answers in `<data dir>/identity/`:

    host.nk           the key's seed (mode 0600)
    host.jwt          the bus credentials (a NATS user JWT), renewed by the running agent
    ca.pem            the CA that signed nats-server's certificate, if the server named one
    server-ca.pem     the CA of the server's HTTPS certificate, if enroll was given one
    enrollment.json   the host id, the server, the NATS URLs, the key actions are signed with

Every enrollment offers a new key (kept in `offered.nk` until the server enrolls it; the server
then revokes the host's key before it), except while a request waits for an admin: asking
again offers the same key, and waits for the same approval. Until the server enrolls the new
key, the host's key and credentials stay as they were.

Requests are signed with the key (bus/trust/proof.py): only this host can enroll it or renew
what it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drover.agent.files import write_atomically
from drover.bus import subjects
from drover.bus.connection import BusSettings
from drover.bus.trust import proof
from drover.bus.trust.credentials import BusIdentity
from drover.bus.trust.jwt import BadJwt, decode
from drover.bus.trust.keys import BadKey, KeyPair, Kind
from drover.ops.cancels import checkpoint

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

IDENTITY_DIR = "identity"
RENEW_CHECK_EVERY = 600.0
HTTP_TIMEOUT = 15.0


class NotEnrolled(Exception):
    """This host has no (readable) enrollment: `drover agent enroll` first."""


class EnrollmentRefused(Exception):
    """The server refused: says why."""


@dataclass(frozen=True)
class Enrollment:
    host: str
    server_url: str
    nats_urls: tuple[str, ...]
    action_signer: str
    directory: Path
    has_ca: bool = False
    has_server_ca: bool = False
    # The hub's JetStream domain: the agent calls JetStream through it, which works from
    # behind an outpost too. None (enrolled before the hub had one): directly.
    jetstream_domain: str | None = None

    @property
    def seed_file(self) -> Path:
        return self.directory / "host.nk"

    @property
    def jwt_file(self) -> Path:
        return self.directory / "host.jwt"

    @property
    def ca_file(self) -> Path | None:
        return self.directory / "ca.pem" if self.has_ca else None

    @property
    def server_verify(self) -> bool | str:
        """How to check the server's HTTPS certificate: its CA's file, or the system's CAs."""
        return str(self.directory / "server-ca.pem") if self.has_server_ca else True

    @classmethod
    def load(cls, data_dir: Path) -> Enrollment:
        directory = data_dir / IDENTITY_DIR
        path = directory / "enrollment.json"
        try:
            saved = json.loads(path.read_text())
            enrollment = cls(
                host=saved["host"],
                server_url=saved["server_url"],
                nats_urls=tuple(saved["nats_urls"]),
                action_signer=saved["action_signer"],
                directory=directory,
                has_ca=bool(saved.get("has_ca")),
                has_server_ca=bool(saved.get("has_server_ca")),
                jetstream_domain=saved.get("jetstream_domain") or None,
            )
        except FileNotFoundError:
            raise NotEnrolled(
                f"this host is not enrolled ({path} is missing): run `drover agent enroll "
                f"--server URL --token TOKEN --data-dir {data_dir}`"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise NotEnrolled(f"{path}: unreadable ({err}); enroll again") from None
        if not enrollment.seed_file.exists() or not enrollment.jwt_file.exists():
            raise NotEnrolled(f"{directory}: the key or the credentials are missing; enroll again")
        return enrollment

    def bus_settings(self, base: BusSettings, url: str | None = None) -> BusSettings:
        """`base` with this host's credentials, CA and inbox, and `url` or else every URL the
        server gave (a cluster's nodes: any that answers will do)."""
        identity = BusIdentity.from_files(self.seed_file, self.jwt_file)
        return replace(
            base,
            url=url or ",".join(self.nats_urls),
            identity=identity,
            tls_ca=self.ca_file or base.tls_ca,
            inbox_prefix=subjects.agent_inbox(self.host),
            jetstream_domain=self.jetstream_domain,
        )

    def expires_at(self) -> datetime | None:
        try:
            exp = decode(self.jwt_file.read_text()).get("exp")
        except (OSError, BadJwt):
            return None
        return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int) else None


def host_key(data_dir: Path) -> KeyPair:
    """This host's enrolled key."""
    return _read_key(data_dir / IDENTITY_DIR / "host.nk")


def _read_key(path: Path) -> KeyPair:
    try:
        return KeyPair(path.read_bytes().strip())
    except FileNotFoundError:
        raise NotEnrolled(f"{path} is missing; enroll again") from None
    except BadKey as err:
        raise NotEnrolled(f"{path}: {err}") from None


def _offered_key(data_dir: Path) -> KeyPair:
    """The key this enrollment offers: the one a request still waits with, else a new one.
    It lives in `offered.nk` until the server enrolls it: the enrolled key (`host.nk`) and its
    credentials stay as they are whatever the server answers, or if it cannot be reached."""
    path = data_dir / IDENTITY_DIR / "offered.nk"
    if path.exists():
        return _read_key(path)
    key = KeyPair.create(Kind.USER)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomically(path, key.seed + b"\n", mode=0o600)
    return key


async def enroll(
    server_url: str,
    host: str,
    data_dir: Path,
    token: str | None = None,
    *,
    wait: timedelta = timedelta(minutes=10),
    poll: float = 5.0,
    verify: bool | str = True,
    on_pending: Callable[[str], None] = lambda public_key: None,
    client: httpx.AsyncClient | None = None,
) -> Enrollment:
    """Enroll this host; without a token, ask until an admin approves (up to `wait`).
    EnrollmentRefused says why the server would not. `client`: an HTTP client of the server's
    to use (one that enrolls many hosts: making a client costs tens of ms of CPU, for its TLS
    context), else one is made."""
    offered = data_dir / IDENTITY_DIR / "offered.nk"
    key = _offered_key(data_dir)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait.total_seconds()
    told = False
    async with contextlib.AsyncExitStack() as stack:
        http = client
        if http is None:
            http = await stack.enter_async_context(_client(server_url, verify))
        while True:
            body = proof.signed_request(key, "enroll", host) | ({"token": token} if token else {})
            response = await _post(http, "/api/v1/enroll", body)
            if response.status_code == 201:
                saved = _save(data_dir, server_url, response.json(), verify, offered)
                return saved
            if response.status_code in (403, 409):  # this key will never do: the next is new
                offered.unlink(missing_ok=True)
                raise EnrollmentRefused(f"{_why(response)}; running this again offers a new key")
            if response.status_code != 202:
                raise EnrollmentRefused(_why(response))
            if not told:
                on_pending(key.public_key)
                told = True
            if loop.time() + poll > give_up:
                raise EnrollmentRefused(
                    f"not approved within {wait}; the request stays: approve it with `drover "
                    f"hosts approve {host} {key.public_key}` and run this again"
                )
            checkpoint()  # the cancel a NATS call this round may have swallowed
            await asyncio.sleep(poll)


async def renew(enrollment: Enrollment, verify: bool | str | None = None) -> datetime | None:
    """Fresh credentials from the server, written where the bus reads them at its next
    connect; their expiry."""
    key = KeyPair(enrollment.seed_file.read_bytes().strip())
    verify = enrollment.server_verify if verify is None else verify
    async with _client(enrollment.server_url, verify) as http:
        response = await _post(
            http, "/api/v1/enroll/renew", proof.signed_request(key, "renew", enrollment.host)
        )
    if response.status_code != 200:
        raise EnrollmentRefused(_why(response))
    answer = response.json()
    write_atomically(enrollment.jwt_file, answer["jwt"].encode(), mode=0o600)
    domain = answer.get("jetstream_domain")
    if domain and domain != enrollment.jetstream_domain:  # the hub has one now: from next start
        _remember_domain(enrollment, domain)
    return enrollment.expires_at()


def _remember_domain(enrollment: Enrollment, domain: str) -> None:
    path = enrollment.directory / "enrollment.json"
    saved = json.loads(path.read_text())
    saved["jetstream_domain"] = domain
    write_atomically(path, json.dumps(saved, indent=2).encode())


async def keep_credentials_fresh(enrollment: Enrollment) -> None:
    """A loop: renew the credentials once less than half of their life is left (forever()
    restarts it, with backoff, when the server cannot be reached)."""
    while True:
        expires = enrollment.expires_at()
        if expires is not None:
            issued = _issued_at(enrollment)
            left = expires - datetime.now(UTC)
            if issued is not None and left < (expires - issued) / 2:
                new_expiry = await renew(enrollment)
                log.info("bus credentials renewed; they now expire at %s", new_expiry)
        checkpoint()  # the cancel a NATS call this round may have swallowed
        await asyncio.sleep(RENEW_CHECK_EVERY)


def _issued_at(enrollment: Enrollment) -> datetime | None:
    try:
        iat = decode(enrollment.jwt_file.read_text()).get("iat")
    except (OSError, BadJwt):
        return None
    return datetime.fromtimestamp(iat, UTC) if isinstance(iat, int) else None


def _client(server_url: str, verify: bool | str) -> httpx.AsyncClient:
    # Imported here: a running agent asks the server something once every few days, and the
    # HTTP client (and what it brings) would otherwise sit in its memory all the time.
    import httpx

    return httpx.AsyncClient(base_url=server_url, timeout=HTTP_TIMEOUT, verify=verify)


async def _post(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    import httpx

    try:
        return await http.post(path, json=body)
    except httpx.HTTPError as err:
        raise EnrollmentRefused(f"cannot reach the server at {http.base_url}: {err}") from None


def _why(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return f"the server refused ({response.status_code}): {detail or response.text[:200]}"


def _save(
    data_dir: Path, server_url: str, answer: dict[str, Any], verify: bool | str, key_file: Path
) -> Enrollment:
    """Keep what the server answered, and the key it enrolled as the host's key."""
    directory = data_dir / IDENTITY_DIR
    if answer.get("ca_pem"):
        write_atomically(directory / "ca.pem", answer["ca_pem"].encode())
    if isinstance(verify, str):  # renewals check the server's certificate as enroll did
        write_atomically(directory / "server-ca.pem", Path(verify).read_bytes())
    write_atomically(directory / "host.jwt", answer["jwt"].encode(), mode=0o600)
    key_file.replace(directory / "host.nk")
    saved = {
        "host": answer["host"],
        "server_url": server_url,
        "nats_urls": answer["nats_urls"],
        "action_signer": answer["action_signer"],
        "has_ca": bool(answer.get("ca_pem")),
        "has_server_ca": isinstance(verify, str),
        "jetstream_domain": answer.get("jetstream_domain"),
    }
    write_atomically(directory / "enrollment.json", json.dumps(saved, indent=2).encode())
    return Enrollment.load(data_dir)
