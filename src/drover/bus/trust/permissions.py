"""What each identity may do on the bus, as NATS subject permissions. Anything not named here
is refused by nats-server (and logged there as a Publish or Subscription Violation).

An agent may publish only on its own subjects and keys, read only from the consumers the server
made for it, and hear only its own inbox. It may not make consumers, read stream or bucket
information, or look at any other host's subjects. The server may do what it does: run the
JetStream API, publish actions and desired state, read everything agents publish — but it may
not speak as an agent (publish their state, events, results or output)."""

from __future__ import annotations

from drover.bus import subjects
from drover.bus.trust.jwt import Permissions

_JS_API = subjects.JS_API
# An agent calls the JetStream API and writes keys either way: directly (enrolled before the
# hub had its domain) or through the hub's domain (docs/operations.md, "Outposts").
_WAYS = (None, subjects.JS_DOMAIN)


def agent(host: str) -> Permissions:
    consumers = [
        (subjects.ACTIONS_STREAM, subjects.agent_actions_consumer(host)),
        (subjects.ACTIONS_STREAM, subjects.agent_aborts_consumer(host)),
        (subjects.DESIRED_STREAM, subjects.agent_desired_consumer(host)),
    ]
    return _agent_rights(host, consumers, _WAYS)


def _agent_rights(
    host: str, consumers: list[tuple[str, str]], ways: tuple[str | None, ...]
) -> Permissions:
    """What the agent of `host` publishes and hears (`*` for `host`: every host's), reading
    from `consumers` (stream, consumer), calling JetStream each of `ways` (None: directly,
    or through that domain)."""
    publish = [
        # Any host's: a leaf node passes a stream's interest (drover.event.>) only to a user
        # allowed the whole of it.
        "drover.event.>" if host == "*" else f"drover.event.{host}.>",
        subjects.result_subject(host),
        subjects.output_subject(host),
    ]
    for way in ways:
        publish += [
            subjects.kv_subject(subjects.STATE_BUCKET, subjects.host_key(host), way),
            subjects.kv_subject(subjects.STATE_BUCKET, f"svc.{host}.>", way),
            subjects.kv_subject(subjects.INVENTORY_BUCKET, subjects.inventory_key(host), way),
        ]
    for stream, consumer in consumers:
        for way in ways:
            api = subjects.js_api(way)
            publish += [
                f"{api}.CONSUMER.INFO.{stream}.{consumer}",
                f"{api}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            ]
        publish.append(f"$JS.ACK.{stream}.{consumer}.>")
    return Permissions(publish=tuple(publish), subscribe=(f"{subjects.agent_inbox(host)}.>",))


def outpost() -> Permissions:
    """An outpost's leaf node connection to the hub (`drover outpost`): what may cross it.
    What its agents publish goes up, what they are answered comes down — for any host, since
    the hosts behind an outpost are not known when it is made. Each agent's own rights are
    still enforced where it connects, by the outpost's nats-server, so a host behind an
    outpost can do no more than one connected to the hub. Only the hub's domain API crosses:
    a leaf node's clients reach the hub's JetStream through nothing else."""
    # A consumer name is one token (agent-<host>, aborts-<host>, desired-<host>), and NATS
    # wildcards match whole tokens only: so every consumer of those two streams.
    any_consumer = [(subjects.ACTIONS_STREAM, "*"), (subjects.DESIRED_STREAM, "*")]
    agents = _agent_rights("*", any_consumer, (subjects.JS_DOMAIN,))
    probe = outpost_probe("*")
    return Permissions(agents.publish + probe.publish, agents.subscribe + probe.subscribe)


def outpost_probe(name: str) -> Permissions:
    """The outpost's own client: it asks the hub's JetStream, through the link, whether it
    answers — the one thing its agents need of the link."""
    return Permissions(
        publish=(f"{subjects.js_api(subjects.JS_DOMAIN)}.INFO",),
        subscribe=(f"{subjects.outpost_inbox(name)}.>",),
    )


def outpost_system() -> Permissions:
    """An outpost's leaf node connection in the system account: only what keeps its full
    resolver in step with the hub's — account JWTs pushed there (a revocation) come down,
    and its lookups and periodic comparisons go up and are answered."""
    return Permissions(
        publish=(
            "$SYS.REQ.CLAIMS.PACK",
            "$SYS.REQ.CLAIMS.LIST",
            "$SYS.REQ.ACCOUNT.*.CLAIMS.LOOKUP",
            "_INBOX.>",
            "$SYS._INBOX.>",
        ),
        subscribe=(
            "$SYS.REQ.CLAIMS.UPDATE",
            "$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE",
            "_INBOX.>",
            "$SYS._INBOX.>",
        ),
    )


def server() -> Permissions:
    return Permissions(
        publish=(
            f"{_JS_API}.>",
            "$JS.ACK.>",
            "$JS.FC.>",  # flow control answers of the ordered consumers behind KV watches
            "drover.action.>",
            subjects.kv_subject(subjects.DESIRED_BUCKET, ">"),
            subjects.kv_subject(subjects.LEASES_BUCKET, ">"),
            # Deleting the keys of a decommissioned host, never writing them.
            subjects.kv_subject(subjects.STATE_BUCKET, ">"),
            subjects.kv_subject(subjects.INVENTORY_BUCKET, ">"),
            subjects.SERVER_WAKE,
        ),
        subscribe=(f"{subjects.SERVER_INBOX}.>", subjects.SERVER_WAKE),
    )


def claims_pusher() -> Permissions:
    """The server's user in the system account: it only hands nats-server new account JWTs
    (a revocation) and hears the answer."""
    return Permissions(
        publish=("$SYS.REQ.CLAIMS.UPDATE", "$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE"),
        subscribe=(f"{subjects.SERVER_INBOX}.>",),
    )
