"""Creates the streams and buckets drover uses. Idempotent; the server runs it at start."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError

from drover.bus import subjects

DAY = 24 * 3600.0
GIB = 1024**3
OUTPUT_STREAM_BYTES = 2 * GIB
OUTPUT_MSG_BYTES = 256 * 1024  # a chunk (messages.MAX_CHUNK) in base64, and its envelope


def stream_configs() -> list[StreamConfig]:
    return [
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


def bucket_configs() -> list[KeyValueConfig]:
    return [
        KeyValueConfig(bucket=subjects.STATE_BUCKET, history=1, storage=StorageType.FILE),
        KeyValueConfig(bucket=subjects.DESIRED_BUCKET, history=1, storage=StorageType.FILE),
        KeyValueConfig(bucket=subjects.INVENTORY_BUCKET, history=1, storage=StorageType.FILE),
    ]


async def ensure(js: JetStreamContext) -> None:
    for config in stream_configs():
        try:
            await js.add_stream(config)
        except BadRequestError:
            # Exists with other settings: bring it to ours.
            await js.update_stream(config)
    for bucket in bucket_configs():
        await js.create_key_value(bucket)
