"""The fault-injection suite: each test breaks something real (a process killed, a link cut, a
nats-server restarted, errors thrown from inside the NATS client) while actions run, then
counts what really ran in each command's own fsynced journal.

`make test` runs every scenario a few cycles (marker `chaos`); `make chaos` runs them all with
DROVER_CHAOS=full, many cycles each, and appends each scenario's counts to the JSON lines file
named by DROVER_CHAOS_REPORT, from which docs/reliability.md takes its figures."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

FULL = os.environ.get("DROVER_CHAOS") == "full"

# A command that proves each real execution independently of drover: it appends
# "begin <action id> <host>" to its journal (fsynced) before its work and "end <action id>
# <host>" after. One action runs on many hosts; DROVER_HOST tells their executions apart.
JOURNALED_COMMAND = textwrap.dedent(
    """
    import os, sys, time
    def note(word):
        with open(sys.argv[1], "a") as journal:
            action, host = os.environ["DROVER_ACTION_ID"], os.environ["DROVER_HOST"]
            journal.write(f"{word} {action} {host}\\n")
            journal.flush()
            os.fsync(journal.fileno())
    note("begin")
    time.sleep(float(sys.argv[2]))
    note("end")
    """
)


def cycles(quick: int, full: int) -> int:
    """How many times a scenario repeats: `quick` in `make test`, `full` in `make chaos`."""
    return full if FULL else quick


def journaled_command(tmp: Path, name: str, seconds: float) -> tuple[list[str], Path]:
    """argv of a command that journals each execution and takes `seconds`; its journal."""
    script = tmp / "journaled_command.py"
    script.write_text(JOURNALED_COMMAND)
    journal = tmp / f"{name}.journal"
    # -S: no site-packages, so no coverage start-up hook inside the command under test.
    return [sys.executable, "-S", str(script), str(journal), str(seconds)], journal


Run = tuple[str, str]  # (action id, host)


def executions(journal: Path) -> tuple[Counter[Run], Counter[Run]]:
    """How many times each (action id, host) began and ended, as its command journaled it."""
    began: Counter[Run] = Counter()
    ended: Counter[Run] = Counter()
    if journal.exists():
        for line in journal.read_text().splitlines():
            word, action, host = line.split()
            (began if word == "begin" else ended)[action, host] += 1
    return began, ended


def report(scenario: str, **counts: Any) -> None:
    """Record a scenario's counts: on stdout (seen with -s or on failure) and, under
    `make chaos`, appended to $DROVER_CHAOS_REPORT."""
    line = json.dumps({"scenario": scenario, "full": FULL, **counts}, sort_keys=True)
    print(line)
    if target := os.environ.get("DROVER_CHAOS_REPORT"):
        with open(target, "a") as out:
            out.write(line + "\n")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.chaos)
