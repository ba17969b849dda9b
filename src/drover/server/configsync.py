"""Keeps the active configuration: polls the source, validates every new revision, and only a
revision that validates replaces the active one. A broken one is reported (log and API) with
every problem's location, and the last good revision stays in force."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from drover.config.errors import ConfigError, ConfigProblem, ConfigSourceError
from drover.config.loader import load_snapshot
from drover.config.schema import FleetConfig
from drover.config.source import ConfigSource
from drover.ops.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfigFailure:
    revision: str | None
    problems: tuple[ConfigProblem, ...]
    message: str
    at: datetime


class ConfigSync:
    def __init__(
        self,
        source: ConfigSource,
        clock: Clock,
        poll_interval: float,
        on_change: Callable[[FleetConfig], Awaitable[None]],
        on_reject: Callable[[ConfigFailure], Awaitable[None]] | None = None,
    ) -> None:
        self.source = source
        self._on_reject = on_reject
        self._clock = clock
        self.poll_interval = poll_interval
        self._on_change = on_change
        self.active: FleetConfig | None = None
        self.active_since: datetime | None = None
        self.last_error: ConfigFailure | None = None
        self._last_seen: str | None = None

    async def poll_once(self) -> None:
        try:
            snapshot = await asyncio.to_thread(self.source.read)
        except ConfigSourceError as err:
            self._fail(None, (), str(err))
            return
        except Exception as err:  # a bug below us must not end config sync
            log.exception("reading %s failed", self.source.description)
            self._fail(None, (), f"cannot read {self.source.description}: {err!r}")
            return
        if snapshot.revision == self._last_seen:
            if self.last_error is not None and self.last_error.revision is None:
                self.last_error = None  # the source is readable again
            return
        self._last_seen = snapshot.revision
        try:
            config = await asyncio.to_thread(load_snapshot, snapshot)
        except ConfigError as err:
            await self._reject(
                snapshot.revision, err.problems, f"revision {snapshot.revision} is invalid"
            )
            return
        except Exception as err:  # same: the revision is reported, not the loop ended
            log.exception("loading revision %s failed", snapshot.revision)
            await self._reject(snapshot.revision, (), f"revision {snapshot.revision}: {err!r}")
            return
        self.active = config
        self.active_since = self._clock.now()
        self.last_error = None
        log.info(
            "config revision %s active (%d applications)",
            config.revision,
            len(config.applications),
        )
        await self._on_change(config)

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_interval)

    async def _reject(
        self, revision: str, problems: tuple[ConfigProblem, ...], message: str
    ) -> None:
        """A revision that does not validate: reported once (each revision is read once)."""
        self._fail(revision, problems, message)
        if self._on_reject is not None and self.last_error is not None:
            await self._on_reject(self.last_error)

    def _fail(
        self, revision: str | None, problems: tuple[ConfigProblem, ...], message: str
    ) -> None:
        first_time = self.last_error is None or self.last_error.message != message
        self.last_error = ConfigFailure(revision, problems, message, self._clock.now())
        if first_time:
            kept = self.active.revision if self.active else "none"
            log.error("%s; keeping revision %s", message, kept)
            for problem in problems:
                log.error("  %s", problem)
