"""The state changes an agent has not yet seen stored by the events stream, oldest first: in
memory, and in `events.spool` in its data dir, so that an agent restarted while the bus was
away — a host rebooted during its site's cut — still reports them when it is back.

The file is a journal of JSON lines: `{"id": …, "state": {…}}` for a change spooled (its message
id, which the stream de-duplicates by, kept across lives), `{"sent": n}` when the oldest n left
the spool (stored, or dropped past the limit). Lines are written whole with one `write` each,
not fsynced: an agent that crashes loses nothing of it, a machine that loses power may lose
what the kernel had not written yet. A line torn by a crash is skipped on load. Once the spool
is empty the file is emptied; while it never is, it is rewritten with only what is pending
once it holds COMPACT_AFTER lines.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from drover.bus.messages import ServiceState

log = logging.getLogger(__name__)

COMPACT_AFTER = 100_000  # lines in the file


class EventSpool:
    def __init__(self, path: Path, limit: int, on_drop: Callable[[], None]) -> None:
        self.path = path
        self.limit = limit
        self._on_drop = on_drop
        self._pending: deque[tuple[str, ServiceState]] = deque()
        self._lines = 0
        self._fd: int | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def load(self) -> int:
        """What an earlier life left unsent, back in the spool (and the file rewritten with
        only that); how many changes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            text = ""
        torn = 0
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                if "sent" in entry:
                    for _ in range(min(int(entry["sent"]), len(self._pending))):
                        self._pending.popleft()
                else:
                    self._pending.append(
                        (str(entry["id"]), ServiceState.model_validate(entry["state"]))
                    )
            except (ValueError, KeyError, TypeError, ValidationError):
                torn += 1
        if torn:
            log.warning("%s: %d unreadable line(s) skipped", self.path, torn)
        while len(self._pending) > self.limit:
            self._pending.popleft()
            self._on_drop()
        self._rewrite()
        return len(self._pending)

    def add(self, msg_id: str, state: ServiceState) -> None:
        if len(self._pending) >= self.limit:
            self._pending.popleft()
            self._on_drop()
            self._write({"sent": 1})
        self._pending.append((msg_id, state))
        self._write({"id": msg_id, "state": state.model_dump(mode="json")})

    def oldest(self, count: int) -> list[tuple[str, ServiceState]]:
        return [self._pending[n] for n in range(min(count, len(self._pending)))]

    def sent(self, count: int) -> None:
        """The oldest `count` are stored: they leave the spool."""
        if count <= 0:
            return
        for _ in range(count):
            self._pending.popleft()
        if not self._pending:
            self._truncate()
        elif self._lines >= COMPACT_AFTER:
            self._rewrite()
        else:
            self._write({"sent": count})

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, entry: dict[str, object]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())
        self._lines += 1

    def _truncate(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        self._lines = 0

    def _rewrite(self) -> None:
        """The file anew, holding only what is pending: written beside and renamed over."""
        self.close()
        staged = self.path.with_name(self.path.name + ".new")
        with staged.open("w") as file:
            for msg_id, state in self._pending:
                entry = {"id": msg_id, "state": state.model_dump(mode="json")}
                file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        os.chmod(staged, 0o600)
        staged.replace(self.path)
        self._lines = len(self._pending)
