"""Enrollment: how a host gets onto the bus, renews what it got, and is cut off.

- With a token: an admin makes a one-time token (`drover hosts token create`), the host shows
  it with its public key (`drover agent enroll --token`), and gets its credentials at once.
- Without: the host's request waits until an admin approves it (API, CLI, GUI), comparing the
  key the host printed with the key the server shows; the host asks again until then.
- Its credentials are a user JWT for its key with the permissions of bus/trust/permissions.py,
  valid for `credentials_ttl`; the agent renews them when half of that has passed, proving it
  holds the key. Revoking a host puts its key into the account JWT's revocations, which the
  server hands nats-server at once: the host is disconnected and cannot connect again.

Every request that names a key must be signed by that key (bus/trust/proof.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import nats.errors

from drover.bus import topology
from drover.bus.connection import Bus
from drover.bus.trust import permissions, proof
from drover.bus.trust.authority import Authority
from drover.bus.trust.jwt import decode as decode_jwt
from drover.bus.trust.keys import BadKey, Kind, kind_of
from drover.model.names import is_host_id
from drover.ops.cancels import bounded, checkpoint
from drover.ops.clock import Clock
from drover.server.auth.credentials import new_token_id, sha256
from drover.server.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from drover.store.audit import AuditEntry
from drover.store.enrollment import (
    EnrollmentStore,
    EnrollmentToken,
    HostKey,
    KeyState,
    TokenRefused,
)

log = logging.getLogger(__name__)

ENROLL_TOKEN_PREFIX = "dre_"  # noqa: S105 (a prefix, not a secret)
CLAIMS_UPDATE = "$SYS.REQ.CLAIMS.UPDATE"
# A revoked key stays listed this long past the life of the last credentials it could hold.
REVOCATION_MARGIN = timedelta(hours=1)


@dataclass(frozen=True)
class EnrollmentSettings:
    credentials_ttl: timedelta = timedelta(days=7)
    token_ttl: timedelta = timedelta(hours=1)  # a new token's, unless asked otherwise
    max_token_ttl: timedelta = timedelta(days=7)
    max_pending: int = 1000  # requests waiting for approval, at most
    max_pending_per_source: int = 20  # from one address
    pending_lifetime: timedelta = timedelta(hours=24)  # a request not decided by then lapses
    # Where agents reach NATS, told to them when they enroll; empty: the server's own URL.
    agent_nats_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentCredentials:
    host: str
    jwt: str
    expires_at: datetime
    nats_urls: tuple[str, ...]
    ca_pem: str | None  # None: the system's trusted CAs
    action_signer: str  # the public key whose signature every action carries
    jetstream_domain: str | None = None  # the hub's, if it has one (outposts need it)


@dataclass(frozen=True)
class Proof:
    host: str
    public_key: str
    at: datetime
    signature: str


class Enrollment:
    def __init__(
        self,
        store: EnrollmentStore,
        authority: Authority,
        bus: Bus,
        system_bus: Bus,
        clock: Clock,
        settings: EnrollmentSettings,
    ) -> None:
        self.store = store
        self.authority = authority
        self.settings = settings
        self._bus = bus
        self._domain: str | None = None  # "" once known to be none
        self._system_bus = system_bus
        self._clock = clock
        self._account_stale = asyncio.Event()
        self._account_stale.set()  # nats-server hears the revocations once at every start
        self._account_issued = 0
        # One push at a time, each reading the revocations anew: the last to arrive (which
        # nats-server keeps, whatever its date) is never an older list.
        self._pushing = asyncio.Lock()

    # -- tokens -------------------------------------------------------------------------

    async def create_token(
        self, by: str, expires_in: timedelta | None = None, host: str | None = None
    ) -> tuple[EnrollmentToken, str]:
        """A new one-time token, and its secret (shown once, kept only as a hash)."""
        ttl = expires_in or self.settings.token_ttl
        if not timedelta(0) < ttl <= self.settings.max_token_ttl:
            raise BadRequest(
                f"a token lasts more than 0 s and at most {self.settings.max_token_ttl}"
            )
        if host is not None and not is_host_id(host):
            raise BadRequest(f"{host!r} is not a host id")
        now = self._clock.now()
        token = EnrollmentToken(new_token_id(), by, now, now + ttl, host)
        secret = ENROLL_TOKEN_PREFIX + new_token_id() + new_token_id() + new_token_id()
        detail = {"expires_at": token.expires_at.isoformat(), "host": host}
        await self.store.create_token(
            token, sha256(secret), AuditEntry(by, "enrollment.token_created", token.id, now, detail)
        )
        return token, secret

    # -- enrolling ----------------------------------------------------------------------

    async def enroll(
        self, request: Proof, token: str | None, source: str
    ) -> AgentCredentials | HostKey:
        """Credentials for the host at once (a valid token), or its request as it stands:
        pending, or rejected (Forbidden). Asking again with the same key is how a host waits."""
        self._check(request, "enroll")
        now = self._clock.now()
        known = await self.store.get(request.public_key)
        if known is not None and known.host != request.host:
            raise Conflict(f"this key is the key of host {known.host!r}; make a new key")
        if known is not None and known.state in (KeyState.REJECTED, KeyState.REVOKED):
            by = known.revoked_by if known.state is KeyState.REVOKED else known.decided_by
            raise Forbidden(f"this key was {known.state.value} (by {by}); make a new key")
        actor = f"agent:{request.host}"
        key = HostKey(request.public_key, request.host, KeyState.PENDING, now, source[:100])
        if token is not None:
            return await self._enroll_with_token(key, token, actor, source)
        if known is not None and known.state is KeyState.ENROLLED:
            return await self._credentials(known)
        detail = {"public_key": request.public_key, "source": source}
        entry = AuditEntry(actor, "host.enrollment_requested", request.host, now, detail)
        try:
            return await self.store.request(
                key,
                entry,
                max_pending=self.settings.max_pending,
                max_per_source=self.settings.max_pending_per_source,
                waits_since=now - self.settings.pending_lifetime,
            )
        except ValueError as err:
            raise TooManyRequests(f"{err}; try again later", retry_after_s=60) from None

    async def _enroll_with_token(
        self, key: HostKey, token: str, actor: str, source: str
    ) -> AgentCredentials:
        secret = sha256(token)
        try:
            bound_to = await self.store.check_token(secret, key.host, key.requested_at)
        except TokenRefused as err:
            raise Forbidden(str(err)) from None
        # A token for any host enrolls new hosts only: giving a host that has had a key a new
        # one (after a revocation, say) takes a token made for it, or an approval.
        current = await self.store.keys(KeyState.ENROLLED, key.host)
        replacing = bool(current) and current[0].public_key != key.public_key
        had_keys = replacing or await self._had_keys(key)
        if had_keys and bound_to != key.host:
            raise Conflict(
                f"host {key.host!r} has had a key: a new one takes a token made for it "
                f"(drover hosts token create --host {key.host}), or an approval"
            )
        # Its consumers before the token is spent: should the bus fail here, the host may try
        # again with the same token. Only a token that checked out gets this far.
        await topology.ensure_host(self._bus.js, key.host)
        detail = {"public_key": key.public_key, "source": source}
        entry = AuditEntry(actor, "host.enrolled", key.host, key.requested_at, detail)
        try:
            enrolled = await self.store.enroll_with_token(secret, key, entry)
        except TokenRefused as err:
            raise Forbidden(str(err)) from None
        await self._enrolled(key.host, enrolled.revoked, had_keys=had_keys)
        return await self._credentials(enrolled.key)

    async def keys(self, state: KeyState | None, host: str | None) -> list[HostKey]:
        """Hosts' keys, without requests that have lapsed."""
        waits_since = self._clock.now() - self.settings.pending_lifetime
        return await self.store.keys(state, host, waits_since)

    async def _had_keys(self, key: HostKey) -> bool:
        """Whether the host had an enrolled key before this one (revoked since, maybe)."""
        return any(
            k.public_key != key.public_key and k.state is KeyState.REVOKED
            for k in await self.store.keys(host=key.host)
        )

    async def renew(self, request: Proof) -> AgentCredentials:
        self._check(request, "renew")
        key = await self.store.get(request.public_key)
        if key is None or key.host != request.host or key.state is not KeyState.ENROLLED:
            state = "unknown" if key is None else key.state.value
            raise Forbidden(f"this key is not enrolled for host {request.host!r} ({state})")
        return await self._credentials(key)

    async def approve(self, host: str, public_key: str, by: str) -> HostKey:
        now = self._clock.now()
        entry = AuditEntry(by, "host.enrollment_approved", host, now, {"public_key": public_key})
        await topology.ensure_host(self._bus.js, host)
        waits_since = now - self.settings.pending_lifetime
        enrolled = await self.store.approve(host, public_key, by, now, entry, waits_since)
        if enrolled is None:
            raise NotFound(f"no enrollment request of host {host!r} with that key waits")
        had_keys = bool(enrolled.revoked) or await self._had_keys(enrolled.key)
        await self._enrolled(host, enrolled.revoked, had_keys=had_keys)
        return enrolled.key

    async def reject(self, host: str, public_key: str, by: str) -> None:
        now = self._clock.now()
        entry = AuditEntry(by, "host.enrollment_rejected", host, now, {"public_key": public_key})
        if not await self.store.reject(host, public_key, by, now, entry):
            raise NotFound(f"no enrollment request of host {host!r} with that key waits")

    async def revoke(self, host: str, by: str) -> list[str]:
        now = self._clock.now()
        entry = AuditEntry(by, "host.revoked", host, now, {})
        revoked = await self.store.revoke(host, by, now, entry)
        if not revoked:
            raise NotFound(f"host {host!r} has no enrolled key")
        await self.push_revocations()
        log.warning("host %s revoked by %s: its bus credentials no longer work", host, by)
        return revoked

    def _check(self, request: Proof, purpose: str) -> None:
        if not is_host_id(request.host):
            raise BadRequest(f"{request.host!r} is not a host id")
        try:
            kind = kind_of(request.public_key)
        except BadKey as err:
            raise BadRequest(str(err)) from None
        if kind is not Kind.USER:
            raise BadRequest("the key must be a user NKEY (U…)")
        why = proof.refusal(
            purpose,
            request.host,
            request.public_key,
            request.at,
            request.signature,
            self._clock.now(),
        )
        if why is not None:
            raise Forbidden(f"proof of the key refused: {why}")

    async def _enrolled(self, host: str, replaced: list[str], *, had_keys: bool) -> None:
        """After a host's key is enrolled: nats-server refuses a key it replaced from now on;
        a host that had a key before gets consumers anew, which start with the current desired
        state (best effort: the old ones serve it too, from where they were)."""
        if replaced:
            await self.push_revocations()
        if not had_keys:
            return
        try:
            await topology.ensure_host(self._bus.js, host, fresh=True)
        except (nats.errors.Error, OSError, TimeoutError) as err:
            log.warning("consumers of %s not made anew (%r); the old ones serve it", host, err)

    async def _credentials(self, key: HostKey) -> AgentCredentials:
        ttl = self.settings.credentials_ttl
        token = self.authority.issue_user(
            key.host, key.public_key, permissions.agent(key.host), ttl
        )
        expires = datetime.fromtimestamp(decode_jwt(token)["exp"], self._clock.now().tzinfo)
        ca_file = self._bus.settings.tls_ca  # the CA agents are to trust, as the server does
        return AgentCredentials(
            host=key.host,
            jwt=token,
            expires_at=expires,
            nats_urls=self.settings.agent_nats_urls or tuple(self._bus.settings.servers),
            ca_pem=ca_file.read_text() if ca_file is not None else None,
            action_signer=self.authority.signer.public_key,
            jetstream_domain=await self._jetstream_domain(),
        )

    async def _jetstream_domain(self) -> str | None:
        """The domain of the hub's JetStream, asked once: agents that know it reach the hub's
        JetStream through it, from behind an outpost too (bus/subjects.py)."""
        if self._domain is None:
            self._domain = (await self._bus.js.account_info()).domain or ""
        return self._domain or None

    # -- keeping nats-server told -------------------------------------------------------

    async def push_revocations(self) -> None:
        """Hand nats-server the account JWT with every revoked key, now; if the bus cannot be
        reached, `keep_account_current` tries again until it is."""
        self._account_stale.set()
        try:
            await self._push()
        except (nats.errors.Error, OSError, TimeoutError, RuntimeError) as err:
            log.warning("revocations not handed to nats-server yet (%r); trying again", err)

    async def keep_account_current(self) -> None:
        """A loop: push the account JWT at start, after a revocation that could not be pushed,
        and after every reconnect of the system connection (the bus may have restarted)."""
        generation = -1
        while True:
            if self._system_bus.generation != generation:
                self._account_stale.set()
                generation = self._system_bus.generation
            if self._account_stale.is_set():
                await self._push()
            checkpoint()  # the cancel a NATS call this round may have swallowed
            await asyncio.sleep(1.0)

    async def ensure_all_consumers(self) -> None:
        """Every enrolled host's consumers, at start: the bus may have lost them."""
        for key in await self.store.keys(KeyState.ENROLLED):
            await topology.ensure_host(self._bus.js, key.host)

    async def _push(self) -> None:
        async with self._pushing:
            if not self._system_bus.is_open:
                await bounded(self._system_bus.connect(), 10)
            elif not self._system_bus.is_connected:
                raise nats.errors.ConnectionReconnectingError()  # it comes back by itself
            self._account_stale.clear()
            try:
                await self._push_account()
            except Exception:
                self._account_stale.set()
                raise

    async def _push_account(self) -> None:
        now = self._clock.now()
        # Keys revoked longer ago than credentials live need no listing: their JWTs have
        # expired, and the server renews none for them. The account JWT stays small.
        ttl = self.settings.credentials_ttl
        revocations = await self.store.revocations(since=now - ttl - REVOCATION_MARGIN, lasting=ttl)
        # Dated after the last one: nats-server's resolver keeps the newest.
        issued = max(int(now.timestamp()), self._account_issued + 1)
        self._account_issued = issued
        token = self.authority.account_jwt(revocations, issued_at=issued)
        reply = await self._system_bus.nc.request(CLAIMS_UPDATE, token.encode(), timeout=5)
        error = json.loads(reply.data).get("error")
        if error:
            raise RuntimeError(f"nats-server refused the account JWT: {error}")
        log.info("nats-server has the account with %d revoked keys", len(revocations))
