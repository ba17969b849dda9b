"""Log lines as a collector and a person read them: JSON objects or text, each with the
correlation id of what it was written for."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from drover.ops import logging as drover_logging
from drover.ops.logging import correlated


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    logger = logging.getLogger()
    handlers, level = logger.handlers[:], logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_json_lines_carry_the_correlation_and_the_traceback(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    drover_logging.configure("INFO", "json")
    log = logging.getLogger("drover.test")
    with correlated("req-1"):
        log.info("action %s: restart", "a1")
        try:
            raise ValueError("bad \u00e9")
        except ValueError:
            log.exception("it failed")
    log.warning("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(x["level"], x["logger"], x["message"]) for x in lines] == [
        ("INFO", "drover.test", "action a1: restart"),
        ("ERROR", "drover.test", "it failed"),
        ("WARNING", "drover.test", "outside"),
    ]
    assert [x.get("correlation") for x in lines] == ["req-1", "req-1", None]
    assert "ValueError: bad \u00e9" in lines[1]["exception"]
    assert all(x["time"].endswith("Z") and "T" in x["time"] for x in lines)


def test_text_lines_show_the_correlation_in_brackets(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    drover_logging.configure("INFO")
    log = logging.getLogger("drover.test")
    with correlated("req-2"):
        log.info("inside")
    log.info("outside")
    first, second = capsys.readouterr().err.splitlines()
    assert first.endswith("drover.test: inside [req-2]")
    assert second.endswith("drover.test: outside")
