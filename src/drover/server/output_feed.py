"""A command's output as a live feed of events: what is stored, then what is stored next,
until every host's stream has ended.

    event: output   id: <position>   data: {"host": "h1", "seq": 3, "text": "…"}
    event: end      id: <position>   data: {"host": "h1", "outcome": "succeeded",
                                            "exit_code": 0, "chunks": 3, "missing": 0}
    event: done                      data: {"hosts": 2}     nothing more will come

An event's id is its row's position (store/output.py): gap-free and in commit order, so a reader
that comes back with the last id it saw gets exactly the rows after it, none twice and none
skipped. A host's `end` comes after all its output, by construction: its row is written only
once the output is in. Output is shown as UTF-8; bytes that are not are replaced (the whole
output, as bytes, is at /hosts/<host>/output).

The feed follows the database, so it sees what any server process stored; `changes` only make
it look sooner. It stops early when the server closes (the reader resumes elsewhere).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from drover.server.output_collector import Changes
from drover.store.output import END, OutputStore

POLL = 1.0  # seconds between looks at the database when nothing woke the feed
KEEPALIVE = 15.0


@dataclass(frozen=True)
class FeedEvent:
    kind: str  # output, end, done; "" for a keep-alive (no event, only a comment)
    id: str | None = None
    data: dict[str, Any] | None = None

    def encode(self) -> bytes:
        """In text/event-stream form."""
        if not self.kind:
            return b": keep-alive\n\n"
        lines = [f"event: {self.kind}"]
        if self.id is not None:
            lines.append(f"id: {self.id}")
        lines.append("data: " + json.dumps(self.data or {}, ensure_ascii=False))
        return ("\n".join(lines) + "\n\n").encode()


def parse_event_id(value: str | None) -> int | None:
    """The position a Last-Event-ID names; None when it is not one this feed sent."""
    if value is None or value == "":
        return 0
    text = value.strip()
    # ASCII digits only: str.isdigit() also takes "²" or "٣", which int() refuses or reads.
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


async def feed(
    store: OutputStore,
    changes: Changes,
    action_id: str,
    hosts: Sequence[str],
    after: int = 0,
    *,
    only: bool = False,
    poll: float = POLL,
    keepalive: float = KEEPALIVE,
) -> AsyncIterator[FeedEvent]:
    """Events of `hosts` past position `after` until all of them ended; `only`: the reader
    asked for these hosts (rows of the others are not even read)."""
    waiting = set(hosts) - await store.ended(action_id, after)
    quiet_since = time.monotonic()
    while waiting and not changes.closed:
        mark = changes.mark()
        rows = await store.read(action_id, after, hosts if only else None)
        for row in rows:
            after = row.position
            if row.host not in hosts:
                continue
            if row.seq == END:
                waiting.discard(row.host)
                yield FeedEvent("end", str(row.position), json.loads(row.data))
            else:
                text = row.data.decode("utf-8", errors="replace")
                data = {"host": row.host, "seq": row.seq, "text": text}
                yield FeedEvent("output", str(row.position), data)
        if rows:
            quiet_since = time.monotonic()
            continue  # there may be more right away
        if time.monotonic() - quiet_since >= keepalive:
            quiet_since = time.monotonic()
            yield FeedEvent("")
        await changes.wait(poll, mark)
    if not waiting:
        yield FeedEvent("done", None, {"hosts": len(hosts)})
