"""Reading a text/event-stream (server-sent events), as the HTML standard defines it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None  # the last id the stream gave, as a browser would resume from


def events(lines: Iterable[str]) -> Iterator[Event]:
    """The events in a stream's lines; comments (keep-alives) and unknown fields are skipped."""
    kind, last_id = "", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data or kind:
                yield Event(kind or "message", "\n".join(data), last_id)
            kind, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\x00" not in value:
            last_id = value
