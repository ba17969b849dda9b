"""Logging set-up (called only by entry points, the CLI), and the correlation id every line
of an action's path carries."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def parse_level(name: str) -> int:
    """The level called `name`, in any case. Raises ValueError for anything but LEVELS."""
    if name.upper() not in LEVELS:
        raise ValueError(f"unknown log level {name!r}: expected one of {', '.join(LEVELS)}")
    return logging.getLevelNamesMapping()[name.upper()]


def configure(level: str = "INFO", form: str = "text") -> None:
    """Log to stderr: `text` for people, `json` (one object per line) for log collectors."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(with_correlation)
    if form == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s %(name)s: %(message)s%(correlation_tag)s", "%H:%M:%S"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(parse_level(level))
    # The NATS client logs every reconnect attempt at ERROR; our callbacks say it once.
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


# The correlation id of what is being done: an API request's `X-Request-Id`, carried with the
# action it made to the agents and back with their results, so every log line of an action's
# path, on the server and on each host, can be found by one id.
CORRELATION: contextvars.ContextVar[str] = contextvars.ContextVar("correlation", default="")


@contextlib.contextmanager
def correlated(correlation: str) -> Iterator[None]:
    """Log lines written inside carry `correlation` (when it is not empty)."""
    token = CORRELATION.set(correlation)
    try:
        yield
    finally:
        CORRELATION.reset(token)


def with_correlation(record: logging.LogRecord) -> bool:
    """Handler filter: puts the correlation id on every record (text shows it in brackets)."""
    correlation = CORRELATION.get()
    record.correlation = correlation
    record.correlation_tag = f" [{correlation}]" if correlation else ""
    return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, correlation,
    and the traceback as text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, object] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        correlation = getattr(record, "correlation", "")
        if correlation:
            entry["correlation"] = correlation
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
