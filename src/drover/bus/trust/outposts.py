"""What an outpost is given to join the bus: its bundle, made on the hub's side from the bus
authority by `drover outpost init`, copied to the outpost, and read there by `drover outpost`.

An outpost's nats-server is a leaf node of the hub's. It authenticates its site's agents
itself, so it must trust the authority as the hub does, without holding it: the bundle has the
operator JWT and the accounts (public), and two credentials of the outpost's own (secret, mode
0600) for its leaf node connections — one in the DROVER account (what may cross:
permissions.outpost), one in the system account, which keeps its resolver in step with the
hub's (a revoked host is refused at the outpost too, once the link carries the news).

    outpost.json          name, the accounts' public keys and JWTs
    operator.jwt          the operator
    drover.creds          the leaf node user in the DROVER account
    system.creds          the leaf node user in the system account
    probe.nk, probe.jwt   the outpost's own client, which asks the hub whether it answers
    hub-ca.pem            the CA of the hub's leaf node certificate, if given
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from drover.bus.trust import permissions
from drover.bus.trust.authority import Authority, trust_config
from drover.bus.trust.credentials import BusIdentity
from drover.bus.trust.keys import KeyPair, Kind

_MANIFEST = "outpost.json"


class BundleError(Exception):
    """The bundle's directory is missing, incomplete or unreadable."""


@dataclass(frozen=True)
class OutpostBundle:
    directory: Path
    name: str
    system_account: str
    account: str
    accounts: dict[str, str]  # public key → account JWT, preloaded at start

    @property
    def drover_credentials(self) -> Path:
        return self.directory / "drover.creds"

    @property
    def system_credentials(self) -> Path:
        return self.directory / "system.creds"

    def probe_identity(self) -> BusIdentity:
        return BusIdentity.from_files(self.directory / "probe.nk", self.directory / "probe.jwt")

    @property
    def hub_ca(self) -> Path | None:
        path = self.directory / "hub-ca.pem"
        return path if path.exists() else None

    def nats_config(self, resolver_dir: Path) -> str:
        """Trust the authority as the hub does (security.Trust)."""
        return trust_config(
            self.directory / "operator.jwt", self.system_account, self.accounts, resolver_dir
        )

    @classmethod
    def load(cls, directory: Path) -> OutpostBundle:
        directory = directory.resolve()  # nats-server reads the paths from its own cwd
        try:
            manifest = json.loads((directory / _MANIFEST).read_text())
            bundle = cls(
                directory,
                str(manifest["name"]),
                str(manifest["system_account"]),
                str(manifest["account"]),
                {str(k): str(v) for k, v in manifest["accounts"].items()},
            )
        except FileNotFoundError as err:
            raise BundleError(
                f"{err.filename}: missing; make the bundle on the hub's side with "
                "`drover outpost init NAME --out DIR` and copy DIR here"
            ) from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise BundleError(f"{directory / _MANIFEST}: not an outpost bundle ({err})") from None
        needed_files = ("operator.jwt", "probe.nk", "probe.jwt")
        for needed in (*needed_files, bundle.drover_credentials, bundle.system_credentials):
            if not (directory / needed).exists():
                raise BundleError(f"{directory / needed}: missing from the outpost's bundle")
        return bundle


def make_bundle(
    authority: Authority, name: str, directory: Path, hub_ca: Path | None = None
) -> OutpostBundle:
    """Write outpost `name`'s bundle into `directory` (made, mode 0700; refused if it holds
    one already). Its credentials do not expire: an outpost may be cut off for days."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (directory / _MANIFEST).exists():
        raise BundleError(f"{directory} holds an outpost's bundle already; it is kept as it is")
    _write(directory / "operator.jwt", authority.operator_jwt() + "\n", 0o644)
    for file, rights, system in (
        ("drover.creds", permissions.outpost(), False),
        ("system.creds", permissions.outpost_system(), True),
    ):
        key = KeyPair.create(Kind.USER)
        token = authority.issue_user(f"outpost-{name}", key.public_key, rights, None, system=system)
        _write(directory / file, creds(token, key), 0o600)
    probe = KeyPair.create(Kind.USER)
    rights = permissions.outpost_probe(name)
    _write(directory / "probe.nk", probe.seed.decode() + "\n", 0o600)
    token = authority.issue_user(f"outpost-{name}-probe", probe.public_key, rights, None)
    _write(directory / "probe.jwt", token + "\n", 0o600)
    if hub_ca is not None:
        _write(directory / "hub-ca.pem", hub_ca.read_text(), 0o644)
    manifest = {
        "name": name,
        "system_account": authority.system.public_key,
        "account": authority.account.public_key,
        "accounts": authority.preload(),
    }
    _write(directory / _MANIFEST, json.dumps(manifest, indent=2) + "\n", 0o644)
    return OutpostBundle.load(directory)


def creds(user_jwt: str, key: KeyPair) -> str:
    """A NATS credentials file: a user JWT and the seed of its key, as nats-server reads it."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{key.seed.decode()}\n"
        "------END USER NKEY SEED------\n"
    )


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.chmod(path, mode)
