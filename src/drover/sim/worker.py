"""One process of `drover sim`: runs its share of the simulated hosts until SIGTERM or SIGINT.

    python -m drover.sim.worker SETTINGS_JSON

It prints `ready` on its own line once every host it runs is connected and running, and, as it
ends, `done` with what it did as JSON. It ends too when its standard input closes: the parent
(`drover sim`) is gone. Logs go to stderr, warnings and above: ten thousand agents each saying
hello would drown what matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

from drover.ops.logging import configure
from drover.sim.hosts import HostsSettings, SimulatedHosts, host_names


def settings_from_json(text: str) -> HostsSettings:
    """What `drover sim` hands a process: the whole simulation and which share is this one's
    (every `processes`-th host from `index`), not ten thousand names on a command line."""
    raw = json.loads(text)
    hosts = host_names(raw["prefix"], raw["agents"])[raw["index"] :: raw["processes"]]
    return HostsSettings(
        data_dir=Path(raw["data_dir"]),
        hosts=tuple(hosts),
        heartbeat_interval=float(raw["heartbeat_interval"]),
        flap_rate=float(raw["flap_rate"]),
        nats_url=raw["nats_url"],
    )


async def serve(settings: HostsSettings) -> None:
    hosts = SimulatedHosts(settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def announce() -> None:
        await ready.wait()
        print("ready", flush=True)

    announcing = loop.create_task(announce())
    orphaned = loop.create_task(_parent_gone(stop))
    await hosts.run(stop, ready)
    announcing.cancel()
    orphaned.cancel()
    with contextlib.suppress(BrokenPipeError):
        print(
            "done " + json.dumps({"hosts": len(settings.hosts), "flaps": hosts.flaps}), flush=True
        )


async def _parent_gone(stop: asyncio.Event) -> None:
    """Stop once standard input reaches its end: the parent holds the other end. Read by the
    event loop, not a thread: a thread blocked in read() would hold up this process's end."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    stop.set()


class _QuietTlsClose(logging.Filter):
    """asyncio warns at every TLS connection nats-server closes (nats-py's protocol answers
    its end of file in a way asyncio's TLS ignores); with thousands of connections, that
    would be all the log says."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


def main() -> None:
    configure(level="WARNING")
    logging.getLogger("asyncio").addFilter(_QuietTlsClose())
    asyncio.run(serve(settings_from_json(sys.argv[1])))


if __name__ == "__main__":
    main()
