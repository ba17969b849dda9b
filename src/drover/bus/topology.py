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
        # in the system of record, and the agent's ledger remembers that it ran it.
        StreamConfig(
            name=subjects.ACTIONS_STREAM,
            subjects=[subjects.ACTIONS_ALL],
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
