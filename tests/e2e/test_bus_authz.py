"""The bus authorization matrix: every identity × every operation it must not do, each tried on
the real, secured nats-server of a running drover, and each refused by nats-server — the
client told a permissions violation, nats-server's log naming it.

Identities: the agents of two enrolled hosts (each against the other), the server's own
credentials, and four that may not connect at all: a key nobody enrolled, a JWT of another
authority, the CLI's API token, and a revoked host. Beside the refusals, each connected
identity's own work is tried too, and goes through: a matrix that refused everything would
prove nothing.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client

from drover.bus import subjects
from drover.bus.trust import permissions
from drover.bus.trust.authority import Authority
from drover.bus.trust.credentials import BusIdentity
from drover.bus.trust.keys import KeyPair, Kind
from tests.busauth import superuser_client
from tests.conftest import eventually
from tests.e2e.conftest import Journaled, shop_fleet
from tests.harness import Fleet

pytestmark = [pytest.mark.authz, pytest.mark.slow]

OWN, OTHER = "h1", "h2"
REFUSED_WITHIN = 3.0


def agent_refusals(me: str, other: str) -> list[tuple[str, str]]:
    """(pub|sub, subject) that the agent of `me` must be refused."""
    desired, actions = subjects.DESIRED_STREAM, subjects.ACTIONS_STREAM
    state, inventory = subjects.STATE_BUCKET, subjects.INVENTORY_BUCKET
    domain = subjects.js_api(subjects.JS_DOMAIN)
    return [
        # another host's state, events, results, output, inventory
        ("pub", subjects.kv_subject(state, subjects.host_key(other))),
        ("pub", subjects.kv_subject(state, subjects.service_key(other, "shop", "web"))),
        ("pub", subjects.event_subject(other, "shop", "web")),
        ("pub", subjects.result_subject(other)),
        ("pub", subjects.output_subject(other)),
        ("pub", subjects.kv_subject(inventory, subjects.inventory_key(other))),
        # any desired state, its own included: only the server writes it
        ("pub", subjects.kv_subject(subjects.DESIRED_BUCKET, subjects.desired_key(other))),
        ("pub", subjects.kv_subject(subjects.DESIRED_BUCKET, subjects.desired_key(me))),
        # another host's desired state and actions, by its consumers or any other way in
        ("pub", f"$JS.API.CONSUMER.MSG.NEXT.{desired}.{subjects.agent_desired_consumer(other)}"),
        ("pub", f"$JS.API.CONSUMER.MSG.NEXT.{actions}.{subjects.agent_actions_consumer(other)}"),
        ("pub", f"$JS.API.CONSUMER.MSG.NEXT.{actions}.{subjects.agent_aborts_consumer(other)}"),
        ("pub", f"$JS.API.CONSUMER.INFO.{actions}.{subjects.agent_actions_consumer(other)}"),
        ("pub", f"$JS.ACK.{actions}.{subjects.agent_actions_consumer(other)}.1.1.1.1.0"),
        ("pub", f"$JS.API.DIRECT.GET.{desired}.$KV.{subjects.DESIRED_BUCKET}.{other}"),
        ("pub", f"$JS.API.STREAM.MSG.GET.{desired}"),
        ("pub", f"$JS.API.CONSUMER.CREATE.{actions}.mine.{subjects.action_subject(other)}"),
        ("pub", f"$JS.API.CONSUMER.CREATE.{actions}"),
        ("pub", f"$JS.API.CONSUMER.DURABLE.CREATE.{actions}.mine"),
        ("sub", subjects.action_subject(other)),
        ("sub", subjects.kv_subject(subjects.DESIRED_BUCKET, other)),
        # the same through the hub's JetStream domain (what agents behind outposts use)
        ("pub", f"{domain}.CONSUMER.MSG.NEXT.{actions}.{subjects.agent_actions_consumer(other)}"),
        ("pub", subjects.kv_subject(state, subjects.host_key(other), subjects.JS_DOMAIN)),
        ("pub", subjects.kv_subject(subjects.DESIRED_BUCKET, me, subjects.JS_DOMAIN)),
        # wildcards
        ("sub", ">"),
        ("sub", "drover.>"),
        ("sub", subjects.ACTIONS_ALL),
        ("sub", subjects.EVENTS_ALL),
        ("sub", subjects.kv_subject(state, ">")),
        ("sub", "$JS.>"),
        # the server's subjects and requests
        ("pub", subjects.action_subject(other)),
        ("pub", subjects.action_subject(me)),  # not even to itself: actions come from the server
        ("pub", f"$JS.API.STREAM.INFO.{actions}"),
        ("pub", "$JS.API.STREAM.LIST"),
        ("pub", "$JS.API.INFO"),
        ("pub", f"$JS.API.STREAM.DELETE.{actions}"),
        ("pub", f"$JS.API.STREAM.PURGE.{subjects.RESULTS_STREAM}"),
        ("pub", f"$JS.API.CONSUMER.DELETE.{actions}.{subjects.agent_actions_consumer(other)}"),
        ("pub", f"$JS.API.CONSUMER.MSG.NEXT.{subjects.RESULTS_STREAM}.server-results"),
        ("pub", "$SYS.REQ.CLAIMS.UPDATE"),
        ("pub", subjects.SERVER_WAKE),
        ("sub", subjects.SERVER_WAKE),
        # other inboxes
        ("sub", "_INBOX.>"),
        ("sub", f"{subjects.agent_inbox(other)}.>"),
        ("sub", f"{subjects.SERVER_INBOX}.>"),
    ]


def agent_allowed(me: str) -> list[tuple[str, str]]:
    return [
        ("pub", subjects.result_subject(me)),
        ("pub", subjects.kv_subject(subjects.STATE_BUCKET, subjects.host_key(me))),
        ("pub", subjects.kv_subject(subjects.STATE_BUCKET, subjects.host_key(me), "drover")),
        ("pub", subjects.event_subject(me, "shop", "web")),
        ("sub", f"{subjects.agent_inbox(me)}.probe"),
    ]


SERVER_REFUSALS = [
    # it may not speak as an agent
    ("pub", subjects.result_subject(OWN)),
    ("pub", subjects.output_subject(OWN)),
    ("pub", subjects.event_subject(OWN, "shop", "web")),
    # nor hear what is not its own
    ("sub", ">"),
    ("sub", "_INBOX.>"),
    ("sub", f"{subjects.agent_inbox(OWN)}.>"),
    ("sub", subjects.action_subject(OWN)),
    # nor tell nats-server of accounts (its system user alone does)
    ("pub", "$SYS.REQ.CLAIMS.UPDATE"),
]
SERVER_ALLOWED = [
    ("pub", subjects.action_subject(OWN)),
    ("pub", subjects.kv_subject(subjects.DESIRED_BUCKET, OWN)),
    ("sub", f"{subjects.SERVER_INBOX}.probe"),
    ("pub", subjects.SERVER_WAKE),
    ("sub", subjects.SERVER_WAKE),
]


@dataclass
class Probe:
    """One identity's connection, and what nats-server told it."""

    client: Client
    errors: list[str] = field(default_factory=list)

    async def refused(self, fleet: Fleet, verb: str, subject: str) -> bool:
        """Whether nats-server refused it: the client told, and nats-server's log saying so."""
        self.errors.clear()
        seen = len(fleet.nats.log_lines)  # only what nats-server logs from now on counts
        if verb == "pub":
            await self.client.publish(subject, b"{}")
        else:
            await self.client.subscribe(subject)
        await self.client.flush()
        told = f"permissions violation for {'publish' if verb == 'pub' else 'subscription'} to"
        logged = f"{'Publish' if verb == 'pub' else 'Subscription'} Violation"
        # A call through the hub's JetStream domain is refused by the name it maps to there.
        seen_as = _as_the_hub_maps_it(subject)
        wanted = f'"{seen_as.lower()}"'
        loop = asyncio.get_running_loop()
        end = loop.time() + REFUSED_WITHIN
        while loop.time() < end:
            heard = any(told in e and wanted in e for e in self.errors)
            in_log = any(
                logged in line and f'Subject "{seen_as}"' in line
                for line in list(fleet.nats.log_lines)[seen:]
            )
            if heard and in_log:
                return True
            if verb == "pub" and not heard and loop.time() > end - REFUSED_WITHIN + 0.5:
                break  # an allowed publish is never answered: half a second says enough
            await asyncio.sleep(0.02)
        return False


def _as_the_hub_maps_it(subject: str) -> str:
    """`$JS.drover.API.$KV.…` is `$KV.…` to the hub, `$JS.drover.API.…` is `$JS.API.…`."""
    domain = subjects.js_api(subjects.JS_DOMAIN) + "."
    if not subject.startswith(domain):
        return subject
    rest = subject.removeprefix(domain)
    return rest if rest.startswith("$KV.") else f"{subjects.JS_API}.{rest}"


@pytest.fixture
async def fleet(
    tmp_path: Any, nats_server: Any, journaled_service: Journaled
) -> AsyncIterator[Fleet]:
    async with shop_fleet(nats_server, tmp_path, journaled_service) as running:
        await running.start_agent(OWN)
        await running.start_agent(OTHER)
        yield running


def _tls(fleet: Fleet) -> ssl.SSLContext:
    assert fleet.nats.security is not None
    return ssl.create_default_context(cafile=str(fleet.nats.security.certificate.ca_file))


async def _connect(fleet: Fleet, who: BusIdentity | None, **more: Any) -> Probe:
    probe = Probe(client=Client())

    async def on_error(err: Exception) -> None:
        probe.errors.append(str(err).lower())

    options: dict[str, Any] = {
        "servers": [fleet.nats.url],
        "tls": _tls(fleet),
        "allow_reconnect": False,
        "connect_timeout": 5,
        "error_cb": on_error,
        **more,
    }
    if who is not None:
        options["user_jwt_cb"] = lambda: who.user_jwt().encode()
        options["signature_cb"] = lambda nonce: base64.b64encode(who.key.sign(nonce.encode()))
    await probe.client.connect(**options)
    return probe


def _agent_identity(fleet: Fleet, host: str) -> BusIdentity:
    identity = fleet.agents[host].enrollment
    return BusIdentity.from_files(identity.seed_file, identity.jwt_file)


def _server_identity(fleet: Fleet) -> BusIdentity:
    assert fleet.nats.security is not None
    key = KeyPair.create(Kind.USER)
    token = fleet.nats.security.authority.issue_user(
        "probe-server", key.public_key, permissions.server(), None
    )
    return BusIdentity(key, lambda: token)


async def _refused_connect(fleet: Fleet, who: BusIdentity | None, **more: Any) -> bool:
    try:
        probe = await _connect(fleet, who, **more)
    except (nats.errors.Error, OSError) as err:
        return "authorization violation" in str(err).lower()
    await probe.client.close()
    return False


async def test_every_identity_is_refused_everything_not_its_own(
    fleet: Fleet, tmp_path: Any
) -> None:
    cells: list[tuple[str, str, str, bool]] = []  # identity, verb, subject, refused
    for me, other in ((OWN, OTHER), (OTHER, OWN)):
        probe = await _connect(
            fleet, _agent_identity(fleet, me), inbox_prefix=subjects.agent_inbox(me)
        )
        try:
            for verb, subject in agent_refusals(me, other):
                cells.append(
                    (f"agent {me}", verb, subject, await probe.refused(fleet, verb, subject))
                )
            for verb, subject in agent_allowed(me):
                assert not await probe.refused(fleet, verb, subject), (me, verb, subject)
        finally:
            await probe.client.close()
    probe = await _connect(fleet, _server_identity(fleet), inbox_prefix=subjects.SERVER_INBOX)
    try:
        for verb, subject in SERVER_REFUSALS:
            cells.append(("server", verb, subject, await probe.refused(fleet, verb, subject)))
        for verb, subject in SERVER_ALLOWED:
            assert not await probe.refused(fleet, verb, subject), ("server", verb, subject)
    finally:
        await probe.client.close()

    # Those that may not connect at all: every operation is refused with the connection.
    unenrolled = BusIdentity(KeyPair.create(Kind.USER), lambda: "")
    stranger_authority = Authority.create(tmp_path / "another-authority")
    stranger_key = KeyPair.create(Kind.USER)
    foreign_jwt = stranger_authority.issue_user(
        OWN, stranger_key.public_key, permissions.agent(OWN), None
    )
    foreign = BusIdentity(stranger_key, lambda: foreign_jwt)
    assert fleet.http is not None
    await fleet.start_agent("h3")
    revoked_identity = _agent_identity(fleet, "h3")
    response = await fleet.http.post("/api/v1/hosts/h3/revoke")
    assert response.status_code == 200, response.text
    refused_connections = {
        "unenrolled key": await _refused_connect(fleet, unenrolled),
        "another authority's JWT": await _refused_connect(fleet, foreign),
        "the CLI's API token": await _refused_connect(fleet, None, token=fleet.admin_token),
        "no credentials": await _refused_connect(fleet, None),
        "revoked host": await _refused_connect(fleet, revoked_identity),
    }

    not_refused = [cell for cell in cells if not cell[3]]
    assert not not_refused, f"allowed, but must not be: {not_refused}"
    assert all(refused_connections.values()), refused_connections
    operations = len(agent_refusals(OWN, OTHER))
    print(
        f"\nbus authz matrix: {len(cells)} refusals tried on connected identities, "
        f"{len(refused_connections)} identities refused at connect "
        f"(× {operations} operations = {len(refused_connections) * operations} cells), "
        f"{len(agent_allowed(OWN)) * 2 + len(SERVER_ALLOWED)} allowed controls"
    )


async def test_a_revoked_agent_is_cut_off_within_seconds_and_stays_off(fleet: Fleet) -> None:
    agent = fleet.agents[OTHER]
    assert agent.bus.is_connected
    assert fleet.http is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await fleet.http.post(f"/api/v1/hosts/{OTHER}/revoke")
    assert response.status_code == 200, response.text
    await eventually(lambda: not agent.bus.is_connected, timeout=10, interval=0.01)
    cut_off_after = loop.time() - started
    await asyncio.sleep(2.0)  # it keeps trying: nats-server keeps refusing
    assert not agent.bus.is_connected
    assert any(
        "Authorization Violation" in line or "revoked" in line.lower()
        for line in fleet.nats.log_lines
    )
    keys = (await fleet.http.get(f"/api/v1/enrollments?host={OTHER}")).json()
    assert [k["state"] for k in keys] == ["revoked"]
    audit = (await fleet.http.get(f"/api/v1/audit?kind=host.revoked&subject={OTHER}")).json()
    assert len(audit) == 1
    print(f"\nrevoked agent disconnected after {cut_off_after:.2f} s")
    # The other host is untouched.
    assert fleet.agents[OWN].bus.is_connected


async def test_no_agent_can_roll_a_bucket_up_over_other_hosts_keys(fleet: Fleet) -> None:
    """KV streams take `Nats-Rollup` headers by default: one message on an agent's own key
    would wipe every host's. drover's buckets take none."""
    probe = await _connect(
        fleet, _agent_identity(fleet, OWN), inbox_prefix=subjects.agent_inbox(OWN)
    )
    try:
        js = probe.client.jetstream()
        for bucket, key in (
            (subjects.STATE_BUCKET, subjects.host_key(OWN)),
            (subjects.INVENTORY_BUCKET, subjects.inventory_key(OWN)),
        ):
            with pytest.raises(nats.js.errors.APIError, match=r"(?i)rollup"):
                await js.publish(
                    subjects.kv_subject(bucket, key), b"{}", headers={"Nats-Rollup": "all"}
                )
    finally:
        await probe.client.close()
    client = await superuser_client(fleet.nats)
    try:  # the other host's keys are all still there
        kv = await client.jetstream().key_value(subjects.STATE_BUCKET)
        assert (await kv.get(subjects.host_key(OTHER))).value
        assert (await kv.get(subjects.service_key(OTHER, "shop", "web"))).value
    finally:
        await client.close()


async def test_a_restarted_nats_server_still_refuses_a_revoked_host(fleet: Fleet) -> None:
    """The revocation nats-server was told lives in its resolver's directory; the accounts it
    is preloaded with at start are older, and never replace it — even with no drover server
    there to tell it again."""
    revoked = _agent_identity(fleet, OTHER)
    assert fleet.http is not None
    assert (await fleet.http.post(f"/api/v1/hosts/{OTHER}/revoke")).status_code == 200
    await eventually(lambda: not fleet.agents[OTHER].bus.is_connected)
    for component in reversed(fleet.running):  # the server and agents: nobody to push again
        await component.halt()
    fleet.running.clear()
    port = fleet.nats.port
    await fleet.nats.stop()
    fleet.nats.port = port
    await fleet.nats.start()
    assert await _refused_connect(fleet, revoked)
    kept = await _connect(
        fleet, _agent_identity(fleet, OWN), inbox_prefix=subjects.agent_inbox(OWN)
    )
    await kept.client.close()
