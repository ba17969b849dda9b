"""Service state changes published into the state KV bucket, as agents publish them, from a
process of its own (so that the benchmark's process measures, and this one only sends).

    python -m bench.publisher SETTINGS_JSON

SETTINGS_JSON: {"url", "ca", "creds", "hosts", "applications", "count", "status", "rate",
"marker"}.
It encodes `count` changes first: the first `count` placements of the synthetic fleet
(bench/synthetic.py, host by host), each reported with `status` (running: `ok`; stopped:
drifted under `observe`). It prints `ready`, waits for a line on its standard input, publishes
them (core publishes: the stream stores them, as it stores an agent's; `rate` a second, or as
fast as it can when 0), then the first host's record with `marker` as its agent version (what
the benchmark watches for: the server takes the bucket's entries in order), flushes, prints
`sent FIRST LAST` (time.time() of the first and the last publish) and ends.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from datetime import UTC, datetime
from typing import Any

import nats
from tests.reports import host_record

from bench.synthetic import app_name, host_id, service_names
from drover.bus import subjects
from drover.bus.messages import ServiceState, encode
from drover.model.status import Convergence, ServiceStatus

FLUSH_EVERY = 1000
TICK = 0.05  # seconds between two bursts at a set rate


def changes(settings: dict[str, Any]) -> list[tuple[str, bytes]]:
    running = settings["status"] == "running"
    now = datetime.now(UTC)
    out: list[tuple[str, bytes]] = []
    for h in range(settings["hosts"]):
        for a in range(settings["applications"]):
            for service in service_names():
                if len(out) == settings["count"]:
                    return out
                host, app = host_id(h), app_name(a)
                state = ServiceState(
                    host=host,
                    application=app,
                    service=service,
                    provider="process",
                    since=now,
                    status=ServiceStatus.RUNNING if running else ServiceStatus.STOPPED,
                    pid=4242 if running else None,
                    exit_code=None if running else 0,
                    convergence=Convergence.OK if running else Convergence.OBSERVED,
                )
                key = subjects.service_key(host, app, service)
                out.append((subjects.kv_subject(subjects.STATE_BUCKET, key), encode(state)))
    return out


async def publish(settings: dict[str, Any]) -> None:
    messages = changes(settings)
    client = await nats.connect(
        settings["url"],
        tls=ssl.create_default_context(cafile=settings["ca"]),
        user_credentials=settings["creds"],
        connect_timeout=30,
        pending_size=64 * 1024 * 1024,
    )
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    rate = settings["rate"]
    first = time.time()
    if rate:
        per_tick = max(1, int(rate * TICK))
        for start in range(0, len(messages), per_tick):
            due = first + start / rate
            await asyncio.sleep(max(0.0, due - time.time()))
            for subject, payload in messages[start : start + per_tick]:
                await client.publish(subject, payload)
            await client.flush()
    else:
        for index, (subject, payload) in enumerate(messages):
            await client.publish(subject, payload)
            if index % FLUSH_EVERY == FLUSH_EVERY - 1:
                await client.flush()
    marker = host_record(host_id(0), datetime.now(UTC)).model_copy(
        update={"agent_version": settings["marker"]}
    )
    subject = subjects.kv_subject(subjects.STATE_BUCKET, subjects.host_key(marker.host))
    await client.publish(subject, encode(marker))
    await client.flush()
    last = time.time()
    print(f"sent {first} {last}", flush=True)
    await client.close()


def main() -> None:
    asyncio.run(publish(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
