"""What changed, for the live pages: changes coalesced into ticks, fanned out to event streams.

Two sources feed it: the fleet picture (a host's record or a service's state taken from the
state bucket) and the audit trail (every request, approval, dispatch, per-host result, config
change and login is written there, so one hook sees them all). A tick says which topics
changed and which applications, hosts and actions; a page refetches what it shows, through the
API and its access checks, so a tick never carries state itself.

Ticks go out at most every `interval` seconds: a rollout over 10,000 hosts makes thousands of
changes a second, and a page wants one refetch, not thousands. An audit entry is told once its
transaction is over (store.audit), so a page never reads back before what it records is there.
A listener that falls behind gets one merged tick, never an unbounded queue.

A tick's `applications` or `hosts` is null when it may touch any: a host's own record changed
(every application on it), or more hosts changed than a tick lists. An empty list means none
the caller may see.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from drover.ops.cancels import bounded
from drover.store.audit import AuditEntry


class Topic(StrEnum):
    FLEET = "fleet"  # hosts and services: state, lifecycle, targets (overrides)
    ACTIONS = "actions"
    APPROVALS = "approvals"
    CONFIG = "config"
    AUDIT = "audit"  # any entry at all


# An audit entry's kind prefix → the topics it touches (besides `audit`).
_BY_KIND: dict[str, tuple[Topic, ...]] = {
    "action.": (Topic.ACTIONS,),
    "approval.": (Topic.APPROVALS, Topic.ACTIONS),
    "override.": (Topic.FLEET,),
    "host.": (Topic.FLEET,),
    "config.": (Topic.CONFIG, Topic.FLEET),
}
# More hosts than this in one tick are sent as "the fleet changed": a page refetches anyway.
MAX_HOSTS = 200


@dataclass
class Change:
    topics: set[Topic] = field(default_factory=set)
    applications: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    actions: set[str] = field(default_factory=set)
    any_application: bool = False  # a change with no application of its own: may touch any

    def merge(self, other: Change) -> None:
        self.topics |= other.topics
        self.applications |= other.applications
        self.hosts |= other.hosts
        self.actions |= other.actions
        self.any_application |= other.any_application

    def seen_by(
        self, application: Callable[[str], bool], host: Callable[[str], bool]
    ) -> dict[str, list[str] | None]:
        """The tick as one caller may see it: only applications and hosts they may read.
        Action ids are random and reveal nothing (a page that asks for one is checked)."""
        many = len(self.hosts) > MAX_HOSTS
        return {
            "topics": sorted(self.topics),
            "applications": None
            if self.any_application
            else sorted(a for a in self.applications if application(a)),
            "hosts": None if many else sorted(h for h in self.hosts if host(h)),
            "actions": sorted(self.actions),
        }


def change_of(entry: AuditEntry) -> Change:
    topics = {Topic.AUDIT}
    for prefix, touched in _BY_KIND.items():
        if entry.kind.startswith(prefix):
            topics.update(touched)
    change = Change(topics=topics)
    if Topic.ACTIONS in topics:
        change.actions.add(entry.subject)
    if entry.kind.startswith("host."):
        change.hosts.add(entry.subject)
    application = entry.detail.get("application")
    if isinstance(application, str):
        change.applications.add(application)
    elif Topic.FLEET in topics:  # an override or a config change names none: any may move
        change.any_application = True
    return change


class LiveEvents:
    def __init__(self, interval: float = 0.25) -> None:
        self._interval = interval
        self.closed = False
        self._listeners: set[_Listener] = set()
        self._pending: Change | None = None
        self._flush: asyncio.TimerHandle | None = None

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def fleet_changed(self, host: str, application: str | None) -> None:
        if not self._listeners:
            return  # nobody is watching: the fleet's 10,000 hosts cost nothing here
        change = Change(topics={Topic.FLEET}, hosts={host}, any_application=application is None)
        if application is not None:
            change.applications.add(application)
        self._add(change)

    def audited(self, entry: AuditEntry) -> None:
        if self._listeners:
            self._add(change_of(entry))

    def _add(self, change: Change) -> None:
        if self._pending is None:
            self._pending = change
        else:
            self._pending.merge(change)
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # written from a thread with no loop: the next one flushes
                return
            self._flush = loop.call_later(self._interval, self._send)

    def _send(self) -> None:
        change, self._pending, self._flush = self._pending, None, None
        if change is None:
            return
        for listener in self._listeners:
            listener.put(change)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[_Listener]:
        listener = _Listener()
        if self.closed:
            listener.close()
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    def close(self) -> None:
        """The server stops: every stream ends (its browser reconnects, to this server once it
        is back or to another)."""
        self.closed = True
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        for listener in self._listeners:
            listener.close()


class _Listener:
    """One event stream's mailbox: at most one tick waits, later ones merge into it."""

    def __init__(self) -> None:
        self._waiting: Change | None = None
        self._ready = asyncio.Event()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def put(self, change: Change) -> None:
        if self._waiting is None:
            self._waiting = Change()
        self._waiting.merge(change)
        self._ready.set()

    async def next(self, timeout: float) -> Change | None:
        """The next tick, or None after `timeout` seconds without one, or once closed."""
        try:
            await bounded(self._ready.wait(), timeout)
        except TimeoutError:
            return None
        self._ready.clear()
        change, self._waiting = self._waiting, None
        return change
