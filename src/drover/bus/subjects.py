"""Every subject, stream, consumer and KV bucket name, in one place.

The host id is always one whole token, so per-host NATS permissions can be written as
patterns: an agent may publish `drover.result.<its id>` and write `svc.<its id>.>` keys, and
nothing of another host's.

    KV drover-state     host.<host>                    HostRecord    (agent writes, server reads)
                        svc.<host>.<app>.<service>     ServiceState  (agent writes, server reads)
    KV drover-desired   <host>                         DesiredState  (server writes, agent reads)
    KV drover-inventory <host>                         UnitInventory (agent writes, server reads)
    KV drover-leases    rollouts                       holder's name (servers only)
    stream DROVER_EVENTS   drover.event.<host>.<app>.<service>   ServiceState on every change
    stream DROVER_ACTIONS  drover.action.<host>          ActionRequest (server → one agent)
                           drover.action.<host>.abort    AbortRequest  (server → one agent)
    stream DROVER_RESULTS  drover.result.<host>          ActionResult  (agent → server)
    stream DROVER_OUTPUT   drover.output.<host>          OutputChunk   (agent → server)

The hub's JetStream has the domain JS_DOMAIN (its nats-server's `jetstream { domain: … }`), so
that agents behind an outpost (a leaf node with no JetStream of its own) can reach it: they
call the API as `$JS.drover.API.…` and write keys as `$JS.drover.API.$KV.<bucket>.<key>`, which
the hub takes as `$JS.API.…` and `$KV.…`; agents connected to the hub may do the same.

Each host's consumers (`agent-<host>` for actions, `aborts-<host>`, `desired-<host>`) are made by
the server when the host enrolls: an agent may read from its own and may make none. Every name
that ends in a host id starts with a prefix no other such name starts with, so no host id can
name another host's consumer. Replies to an agent's requests come to its own inbox
(`_INBOX.agent.<host>.…`), the server's to `_INBOX.server.…`.
"""

from __future__ import annotations

from dataclasses import dataclass

STATE_BUCKET = "drover-state"
DESIRED_BUCKET = "drover-desired"
INVENTORY_BUCKET = "drover-inventory"
LEASES_BUCKET = "drover-leases"  # which server drives the rollouts (server/lease.py)

EVENTS_STREAM = "DROVER_EVENTS"
ACTIONS_STREAM = "DROVER_ACTIONS"
RESULTS_STREAM = "DROVER_RESULTS"
OUTPUT_STREAM = "DROVER_OUTPUT"

EVENTS_ALL = "drover.event.>"
ACTIONS_ALL = "drover.action.*"
ABORTS_ALL = "drover.action.*.abort"
RESULTS_ALL = "drover.result.*"
OUTPUT_ALL = "drover.output.*"

KV_STREAM_PREFIX = (
    "KV_"  # a KV bucket is the stream KV_<bucket>, its keys the subjects $KV.<bucket>.<key>
)
DESIRED_STREAM = KV_STREAM_PREFIX + DESIRED_BUCKET

SERVER_RESULTS_CONSUMER = "server-results"
SERVER_OUTPUT_CONSUMER = "server-output"


def host_key(host: str) -> str:
    return f"host.{host}"


def service_key(host: str, application: str, service: str) -> str:
    return f"svc.{host}.{application}.{service}"


def desired_key(host: str) -> str:
    return host


def inventory_key(host: str) -> str:
    return host


def event_subject(host: str, application: str, service: str) -> str:
    return f"drover.event.{host}.{application}.{service}"


def action_subject(host: str) -> str:
    return f"drover.action.{host}"


def abort_subject(host: str) -> str:
    """Aborts for one host: in its own actions subject space (what a per-host permission on
    `drover.action.<host>.>` covers), but a subject of their own, so that the agent follows them
    with a consumer of their own while an action runs."""
    return f"drover.action.{host}.abort"


def result_subject(host: str) -> str:
    return f"drover.result.{host}"


def output_subject(host: str) -> str:
    return f"drover.output.{host}"


def agent_actions_consumer(host: str) -> str:
    return f"agent-{host}"


def agent_aborts_consumer(host: str) -> str:
    return f"aborts-{host}"


def agent_desired_consumer(host: str) -> str:
    return f"desired-{host}"


def kind_of(subject: str) -> str:
    """What a subject carries, for counting messages: `event`, `action`, `abort`, `result`,
    `output`, or a bucket's name for a key's subject. Never a host id (one label per host
    would make ten thousand series)."""
    parts = subject.split(".")
    if parts[0] == "$KV" and len(parts) > 1:
        return parts[1]
    if parts[0] == "drover" and len(parts) > 1:
        return "abort" if parts[-1] == "abort" and parts[1] == "action" else parts[1]
    return "other"


JS_API = "$JS.API"
JS_DOMAIN = "drover"


def js_api(domain: str | None) -> str:
    """The JetStream API's prefix: the local one's, or that of the JetStream with `domain`."""
    return f"$JS.{domain}.API" if domain else JS_API


def kv_subject(bucket: str, key: str, domain: str | None = None) -> str:
    """The subject a KV key is written on; through `domain`'s API when given (what a client
    outside the hub's JetStream domain, behind a leaf node, must write to)."""
    plain = f"$KV.{bucket}.{key}"
    return f"{js_api(domain)}.{plain}" if domain else plain


def agent_inbox(host: str) -> str:
    return f"_INBOX.agent.{host}"


SERVER_INBOX = "_INBOX.server"


def outpost_inbox(name: str) -> str:
    """Where the answers to an outpost's probes of the hub come."""
    return f"_INBOX.outpost.{name}"


# Core NATS, between servers: "look at the rollouts now" to the one that drives them, from one
# that took a request, a result, an approval or a cancel (server/orchestrator.py).
SERVER_WAKE = "drover.server.wake"


def dispatch_msg_id(action_id: str, host: str) -> str:
    """JetStream de-duplication id: one dispatch of an action to a host, however often sent."""
    return f"{action_id}.{host}"


def abort_msg_id(action_id: str, host: str) -> str:
    """One abort of an action on a host, however often the server sends it."""
    return f"{action_id}.{host}.abort"


# Results and output carry no de-duplication id: JetStream de-duplicates per stream, whoever
# publishes, so any agent could make another host's result vanish by sending its id first. The
# server stores each result and chunk once however often it comes (store/actions.py, output.py).


@dataclass(frozen=True)
class StateKey:
    """A parsed key of the state bucket. `application`/`service` are empty for a host record."""

    host: str
    application: str = ""
    service: str = ""

    @property
    def is_host(self) -> bool:
        return not self.application


def parse_state_key(key: str) -> StateKey | None:
    """The parts of a state bucket key, or None for a key drover did not lay out."""
    parts = key.split(".")
    if len(parts) == 2 and parts[0] == "host" and parts[1]:
        return StateKey(host=parts[1])
    if len(parts) == 4 and parts[0] == "svc" and all(parts[1:]):
        return StateKey(host=parts[1], application=parts[2], service=parts[3])
    return None
