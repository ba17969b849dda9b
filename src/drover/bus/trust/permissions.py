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

_JS_API = "$JS.API"


def agent(host: str) -> Permissions:
    consumers = [
        (subjects.ACTIONS_STREAM, subjects.agent_actions_consumer(host)),
        (subjects.ACTIONS_STREAM, subjects.agent_aborts_consumer(host)),
        (subjects.DESIRED_STREAM, subjects.agent_desired_consumer(host)),
    ]
    publish = [
        f"drover.event.{host}.>",
        subjects.result_subject(host),
        subjects.output_subject(host),
        subjects.kv_subject(subjects.STATE_BUCKET, subjects.host_key(host)),
        subjects.kv_subject(subjects.STATE_BUCKET, f"svc.{host}.>"),
        subjects.kv_subject(subjects.INVENTORY_BUCKET, subjects.inventory_key(host)),
    ]
    for stream, consumer in consumers:
        publish += [
            f"{_JS_API}.CONSUMER.INFO.{stream}.{consumer}",
            f"{_JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            f"$JS.ACK.{stream}.{consumer}.>",
        ]
    return Permissions(publish=tuple(publish), subscribe=(f"{subjects.agent_inbox(host)}.>",))


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
