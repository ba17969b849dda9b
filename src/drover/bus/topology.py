"""Creates the streams and buckets drover uses. Idempotent; the server runs it at start and
after every reconnect.

`replicas` is how many nats-servers keep a copy of each stream and bucket: 1 on a single
server, 3 on a 3-node cluster (R3: any one node may be lost, or restarted, with nothing lost and
no pause longer than a leader election). A stream made with another count is brought to this one
(JetStream moves the copies while it serves). Consumers are made without a count of their own,
so they have their stream's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from dataclasses import replace

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BadRequestError, NotFoundError

from drover.bus import subjects
from drover.bus.errors import ReplicasRefused

DAY = 24 * 3600.0
GIB = 1024**3
OUTPUT_STREAM_BYTES = 2 * GIB
OUTPUT_MSG_BYTES = 256 * 1024  # a chunk (messages.MAX_CHUNK) in base64, and its envelope

# An agent keeps a running action's message alive (executor.PROGRESS_EVERY) within this.
ACTION_ACK_WAIT = 60.0
# Short: an abort handed to a life of the loop that ended just then (a reconnect) comes again
# this soon, and taking one twice does no harm (the second finds it done).
ABORT_ACK_WAIT = 5.0
DESIRED_ACK_WAIT = 30.0


# Every enrolled host has consumers of its own: two on the actions stream (actions, aborts)
# and one on the desired-state bucket. Since 2.15 nats-server caps a stream at 1,000 consumers
# unless the stream names its own cap (and -1 means its default, not unlimited): so a fleet of
# more than 500 hosts needs these, set on the streams themselves.
MAX_HOSTS = 100_000
HOST_CONSUMERS_ON_ACTIONS = 2
SERVER_CONSUMERS = 16  # room for the servers' own (results, output) and tools'


# nats-server's error codes (JSErrCode) for a replica count it cannot place.
_NOT_CLUSTERED = 10074  # "replicas > 1 not supported in non-clustered mode"
# Fewer JetStream servers up than replicas: "no suitable peers for placement" (a new stream),
# "insufficient resources".
_TOO_FEW_SERVERS = frozenset({10005, 10023})


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    configs = [
        StreamConfig(
            name=subjects.EVENTS_STREAM,
            subjects=[subjects.EVENTS_ALL],
            storage=StorageType.FILE,
            max_age=7 * DAY,
            max_msgs_per_subject=1000,
        ),
        # Work queue: an action message is gone once the agent has acked it; its record lives
        # in the system of record, and the agent's ledger remembers that it ran it. Aborts go
        # here too, on subjects of their own (each host's two consumers do not overlap).
        StreamConfig(
            name=subjects.ACTIONS_STREAM,
            subjects=[subjects.ACTIONS_ALL, subjects.ABORTS_ALL],
            storage=StorageType.FILE,
            retention=RetentionPolicy.WORK_QUEUE,
            max_age=7 * DAY,
            duplicate_window=120.0,
            discard=DiscardPolicy.OLD,
            max_consumers=HOST_CONSUMERS_ON_ACTIONS * MAX_HOSTS + SERVER_CONSUMERS,
        ),
        StreamConfig(
            name=subjects.RESULTS_STREAM,
            subjects=[subjects.RESULTS_ALL],
            storage=StorageType.FILE,
            retention=RetentionPolicy.WORK_QUEUE,
            max_age=7 * DAY,
            duplicate_window=120.0,
        ),
        # Commands' output on its way to the system of record, which keeps it whole: a work
        # queue (gone once the server has stored it), as long as results wait for a server that
        # is down, bounded in bytes. When full it refuses new chunks rather than dropping stored
        # ones: the agent then knows its output did not get through, and its result says so.
        StreamConfig(
            name=subjects.OUTPUT_STREAM,
            subjects=[subjects.OUTPUT_ALL],
            storage=StorageType.FILE,
            retention=RetentionPolicy.WORK_QUEUE,
            max_age=7 * DAY,
            max_bytes=OUTPUT_STREAM_BYTES,
            max_msg_size=OUTPUT_MSG_BYTES,
            duplicate_window=120.0,
            discard=DiscardPolicy.NEW,
        ),
    ]
    return [replace(config, num_replicas=replicas) for config in configs]


LEASE_TTL = 10.0  # seconds


def bucket_configs(replicas: int = 1) -> list[KeyValueConfig]:
    configs = [
        KeyValueConfig(bucket=subjects.STATE_BUCKET, history=1, storage=StorageType.FILE),
        KeyValueConfig(bucket=subjects.DESIRED_BUCKET, history=1, storage=StorageType.FILE),
        KeyValueConfig(bucket=subjects.INVENTORY_BUCKET, history=1, storage=StorageType.FILE),
        # An entry lives LEASE_TTL seconds unless its holder writes it again (server/lease.py).
        KeyValueConfig(
            bucket=subjects.LEASES_BUCKET, history=1, ttl=LEASE_TTL, storage=StorageType.FILE
        ),
    ]
    return [replace(config, replicas=replicas) for config in configs]


def host_consumers(host: str) -> list[tuple[str, ConsumerConfig]]:
    """The consumers one host's agent reads from, by stream. The server makes them when the
    host enrolls (and again at its start): an agent may not make consumers, so that it cannot
    make one over another host's subjects."""

    def durable(name: str, subject: str, **config: object) -> ConsumerConfig:
        return ConsumerConfig(
            name=name,
            durable_name=name,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            max_deliver=-1,
            **config,  # type: ignore[arg-type]
        )

    return [
        (
            subjects.ACTIONS_STREAM,
            durable(
                subjects.agent_actions_consumer(host),
                subjects.action_subject(host),
                ack_wait=ACTION_ACK_WAIT,
                deliver_policy=DeliverPolicy.ALL,
            ),
        ),
        (
            subjects.ACTIONS_STREAM,
            durable(
                subjects.agent_aborts_consumer(host),
                subjects.abort_subject(host),
                ack_wait=ABORT_ACK_WAIT,
                deliver_policy=DeliverPolicy.ALL,
            ),
        ),
        # Its desired state: the current value first, then every change.
        (
            subjects.DESIRED_STREAM,
            durable(
                subjects.agent_desired_consumer(host),
                subjects.kv_subject(subjects.DESIRED_BUCKET, subjects.desired_key(host)),
                ack_wait=DESIRED_ACK_WAIT,
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                max_ack_pending=1,
            ),
        ),
    ]


async def ensure_host(js: JetStreamContext, host: str, *, fresh: bool = False) -> None:
    """Make the host's consumers. `fresh` (a host enrolled anew): delete them first, so that
    the new agent gets its desired state again (actions and aborts not yet taken stay on the
    work queue, and come to it too)."""
    for stream, config in host_consumers(host):
        assert config.name is not None
        if fresh:
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(stream, config.name)
        await js.add_consumer(stream, config=config)


async def ensure(js: JetStreamContext, replicas: int = 1) -> None:
    """Make every stream and bucket, or bring it to our settings (`replicas` among them).
    ReplicasRefused if nats-server cannot keep that many copies."""
    for config in stream_configs(replicas):
        await _refused_replicas_named(config.name or "", replicas, _ensure_stream(js, config))
    for bucket in bucket_configs(replicas):
        stream = subjects.KV_STREAM_PREFIX + bucket.bucket
        await _refused_replicas_named(stream, replicas, _ensure_bucket(js, bucket, stream))


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError as err:
        if err.err_code in _TOO_FEW_SERVERS:
            raise
        # Exists with other settings: bring it to ours.
        await js.update_stream(config)


async def _ensure_bucket(js: JetStreamContext, bucket: KeyValueConfig, stream: str) -> None:
    try:
        config = (await js.stream_info(stream)).config
    except NotFoundError:
        await js.create_key_value(bucket)
        config = (await js.stream_info(stream)).config
    # A KV stream takes `Nats-Rollup` headers by default: a message on one key that wipes
    # the whole bucket. An agent may write its own keys, so none may roll up (drover
    # deletes keys one by one and never purges). Each host has a consumer on the desired
    # state's bucket: room for every one of them (MAX_HOSTS).
    wanted = replace(
        config,
        allow_rollup_hdrs=False,
        num_replicas=bucket.replicas,
        max_consumers=MAX_HOSTS + SERVER_CONSUMERS,
    )
    if wanted != config:
        await js.update_stream(wanted)


async def _refused_replicas_named(stream: str, replicas: int, work: Awaitable[None]) -> None:
    """`work`, with nats-server's refusal of the replica count made a ReplicasRefused."""
    try:
        await work
    except APIError as err:
        if err.err_code == _NOT_CLUSTERED:
            raise ReplicasRefused(stream, replicas, str(err.description), permanent=True) from err
        if err.err_code in _TOO_FEW_SERVERS and replicas > 1:
            raise ReplicasRefused(stream, replicas, str(err.description), permanent=False) from err
        raise
