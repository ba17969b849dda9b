"""The agent's fsynced record of every action it has taken on.

An action id is written here *before* the action runs, and its result after. So:
- a redelivered action whose result is here is answered from here, not run again;
- one that was begun but has no result was cut short by a crash: it is reported `interrupted`
  and never silently re-run;
- one aborted before it began has its `cancelled` result here without a begin: when it is
  delivered, it is answered from here and never runs;
- a result the bus has stored is marked `sent`: one finished but not sent (the bus was away,
  then the agent restarted) is sent by the next life at its start, not only when its action
  comes again after its ack wait. A ledger from before these marks has all its results
  taken as sent.

The file is append-only JSON lines; a torn last line (power cut mid-write) is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from drover.agent.errors import LedgerError
from drover.bus.messages import ActionResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LedgerEntry:
    action_id: str
    result: ActionResult | None  # None: begun, never finished
    sent: bool = False  # the result reached the bus


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, LedgerEntry] = {}
        # Records are written from worker threads (asyncio.to_thread): the running action's
        # and an abort's may be written at the same moment.
        self._lock = threading.Lock()
        self._load()

    def lookup(self, action_id: str) -> LedgerEntry | None:
        return self._entries.get(action_id)

    def unfinished(self) -> list[str]:
        return [e.action_id for e in self._entries.values() if e.result is None]

    def unsent(self) -> list[ActionResult]:
        """Results the bus has not stored, oldest first."""
        return [e.result for e in self._entries.values() if e.result is not None and not e.sent]

    def sent(self, action_id: str) -> None:
        entry = self._entries.get(action_id)
        if entry is None or entry.result is None or entry.sent:
            return
        with self._lock:
            self._append({"id": action_id, "phase": "sent"})
            self._entries[action_id] = LedgerEntry(action_id, entry.result, sent=True)

    def begin(self, action_id: str) -> None:
        with self._lock:
            self._append({"id": action_id, "phase": "begin"})
            self._entries[action_id] = LedgerEntry(action_id, None)

    def finish(self, result: ActionResult) -> None:
        record: dict[str, object] = {
            "id": result.action_id,
            "phase": "end",
            "result": result.model_dump(mode="json"),
        }
        with self._lock:
            self._append(record)
            self._entries[result.action_id] = LedgerEntry(result.action_id, result)

    def _append(self, record: dict[str, object]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise LedgerError(f"cannot write ledger {self.path}: {err}") from err

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as err:
            raise LedgerError(f"cannot read ledger {self.path}: {err}") from err
        if data and not data.endswith(b"\n"):
            # A write torn by a crash: cut it off, or the next record would be appended to it
            # and be unreadable too.
            data = data[: data.rfind(b"\n") + 1]
            log.warning("ledger %s: torn last record dropped", self.path)
            self._truncate(len(data))
        self._read(data.splitlines())

    def _truncate(self, size: int) -> None:
        try:
            with self.path.open("r+b") as f:
                f.truncate(size)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            raise LedgerError(f"cannot repair ledger {self.path}: {err}") from err

    def _read(self, lines: list[bytes]) -> None:
        marked = False
        for number, raw in enumerate(lines, 1):
            try:
                record = json.loads(raw)
                action_id = str(record["id"])
                phase = record.get("phase")
                if phase == "sent":
                    marked = True
                    known = self._entries.get(action_id)
                    if known is not None and known.result is not None:
                        self._entries[action_id] = LedgerEntry(action_id, known.result, True)
                    continue
                result = ActionResult.model_validate(record["result"]) if phase == "end" else None
            except (ValueError, KeyError, TypeError):
                log.warning("ledger %s line %d unreadable; skipped", self.path, number)
                continue
            self._entries[action_id] = LedgerEntry(action_id, result)
        if not marked:  # written before results were marked sent: take them all as sent
            for action_id, entry in self._entries.items():
                if entry.result is not None:
                    self._entries[action_id] = LedgerEntry(action_id, entry.result, True)
