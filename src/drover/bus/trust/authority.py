"""drover's authority over the bus: an operator, the system account and the DROVER account,
and the key that signs actions, each a seed file (mode 0600) in one directory that only the
server reads. From them it mints the JWTs nats-server trusts: the operator's and the accounts'
(which nats-server is given at start and told again on every revocation) and each identity's
user JWT.

The directory is made by `drover bus init` (or by `drover dev` on first start). Nothing in it
belongs in the config repository: whoever holds it can mint any identity."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from drover.bus.trust import jwt
from drover.bus.trust.keys import BadKey, KeyPair, Kind

OPERATOR_NAME = "drover"
ACCOUNT_NAME = "DROVER"
SYSTEM_ACCOUNT_NAME = "SYS"

_FILES = {
    "operator": ("operator.nk", Kind.OPERATOR),
    "system": ("system-account.nk", Kind.ACCOUNT),
    "account": ("account.nk", Kind.ACCOUNT),
    "signer": ("action-signer.nk", Kind.SERVER),
}


_CREATED = "created"  # epoch seconds: what the accounts nats-server preloads are dated


class AuthorityError(Exception):
    """The authority's directory is missing, unreadable or holds something else."""


@dataclass(frozen=True)
class Authority:
    directory: Path
    operator: KeyPair
    system: KeyPair
    account: KeyPair
    signer: KeyPair  # signs every action and abort; agents are given its public key

    @classmethod
    def load(cls, directory: Path) -> Authority:
        keys: dict[str, KeyPair] = {}
        for role, (name, kind) in _FILES.items():
            path = directory / name
            try:
                keys[role] = KeyPair(path.read_bytes().strip())
            except FileNotFoundError:
                raise AuthorityError(
                    f"{path}: missing; make the bus authority with `drover bus init --dir "
                    f"{directory}`"
                ) from None
            except (OSError, BadKey) as err:
                raise AuthorityError(f"{path}: {err}") from None
            if keys[role].kind != kind:
                raise AuthorityError(f"{path}: holds a {keys[role].kind.name} key, not {role}")
        return cls(directory, **keys)

    @classmethod
    def create(cls, directory: Path) -> Authority:
        """Make a new authority in `directory`; refuses to replace one that is there."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, kind in _FILES.values():
            path = directory / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(KeyPair.create(kind).seed + b"\n")
        (directory / _CREATED).write_text(f"{_now()}\n")
        return cls.load(directory)

    @classmethod
    def load_or_create(cls, directory: Path) -> Authority:
        if (directory / _FILES["operator"][0]).exists():
            return cls.load(directory)
        return cls.create(directory)

    def operator_jwt(self) -> str:
        return jwt.encode(
            jwt.operator_claims(OPERATOR_NAME, self.system.public_key),
            subject=self.operator.public_key,
            issuer=self.operator,
            issued_at=_now(),
        )

    def system_account_jwt(self, issued_at: int | None = None) -> str:
        return jwt.encode(
            jwt.account_claims(SYSTEM_ACCOUNT_NAME, jetstream=False),
            subject=self.system.public_key,
            issuer=self.operator,
            issued_at=issued_at or _now(),
        )

    def made_at(self) -> int:
        """When the authority was made: written down then (a copy of the directory that lost
        its files' times keeps it), else its account key's time."""
        try:
            return int((self.directory / _CREATED).read_text())
        except (OSError, ValueError):
            return int((self.directory / _FILES["account"][0]).stat().st_mtime)

    def account_jwt(self, revocations: Mapping[str, int], issued_at: int | None = None) -> str:
        """The DROVER account, refusing every user key in `revocations` (key → the time before
        which its JWTs no longer count)."""
        return jwt.encode(
            jwt.account_claims(ACCOUNT_NAME, jetstream=True, revocations=dict(revocations)),
            subject=self.account.public_key,
            issuer=self.operator,
            issued_at=issued_at or _now(),
        )

    def issue_user(
        self,
        name: str,
        public_key: str,
        permissions: jwt.Permissions,
        ttl: timedelta | None,
        *,
        system: bool = False,
    ) -> str:
        """A user JWT for `public_key` in the DROVER account (the system account if `system`)."""
        now = _now()
        return jwt.encode(
            jwt.user_claims(name, permissions),
            subject=public_key,
            issuer=self.system if system else self.account,
            issued_at=now,
            expires_at=None if ttl is None else now + int(ttl.total_seconds()),
        )

    def nats_config(self, resolver_dir: Path) -> str:
        """The part of a nats-server config that makes it trust this authority: operator mode
        with a full resolver (kept in `resolver_dir`), preloaded with both accounts, so the
        server can start before drover has told it anything.

        The preloaded accounts are dated when the authority was made, so they never replace
        the newer account JWT the server pushed (with its revocations) into the resolver's
        directory: a restarted nats-server keeps refusing revoked keys."""
        operator_file = self.directory / "operator.jwt"
        # Whole or not at all: a nats-server starting meanwhile (a cluster's nodes start
        # together) must never read it half written.
        with tempfile.NamedTemporaryFile("w", dir=self.directory, delete=False) as staged:
            staged.write(self.operator_jwt() + "\n")
        os.chmod(staged.name, 0o644)
        os.replace(staged.name, operator_file)
        return trust_config(operator_file, self.system.public_key, self.preload(), resolver_dir)

    def preload(self) -> dict[str, str]:
        """Both accounts' JWTs, by public key, as a nats-server is given them at start. They
        are dated when the authority was made, so they never replace the newer account JWT
        the server pushed (with its revocations) into a resolver's directory."""
        made = self.made_at()
        return {
            self.system.public_key: self.system_account_jwt(made),
            self.account.public_key: self.account_jwt({}, made),
        }


def trust_config(
    operator_file: Path, system_account: str, preload: Mapping[str, str], resolver_dir: Path
) -> str:
    """Operator mode with a full resolver kept in `resolver_dir`, preloaded with `preload`
    (account public key → JWT)."""
    return "\n".join(
        [
            f"operator: {conf_string(str(operator_file))}",
            f"system_account: {system_account}",
            "resolver: {",
            "  type: full",
            f"  dir: {conf_string(str(resolver_dir))}",
            "  allow_delete: false",
            '  interval: "2m"',
            "}",
            "resolver_preload: {",
            *(f"  {key}: {conf_string(token)}" for key, token in preload.items()),
            "}",
        ]
    )


def _now() -> int:
    return int(time.time())


def conf_string(text: str) -> str:
    """`text` as a quoted string of nats-server's config language."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
