"""Logging set-up, called only by entry points (the CLI)."""

from __future__ import annotations

import logging
import sys

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def parse_level(name: str) -> int:
    """The level called `name`, in any case. Raises ValueError for anything but LEVELS."""
    if name.upper() not in LEVELS:
        raise ValueError(f"unknown log level {name!r}: expected one of {', '.join(LEVELS)}")
    return logging.getLevelNamesMapping()[name.upper()]


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(parse_level(level))
    # The NATS client logs every reconnect attempt at ERROR; our callbacks say it once.
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
