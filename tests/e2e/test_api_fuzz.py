"""Schemathesis against the live API, from its own OpenAPI schema: no request, valid or not,
gets a 5xx answer. The real server with an agent, on both databases, as the admin (who may
call everything)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.harness import Fleet

# About 45 s a database: the coverage, fuzzing and stateful phases over every operation.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

# Per operation and phase: enough to reach every field of the request models, few enough for
# `make test` (under a minute a database). The seed keeps a failure reproducible.
EXAMPLES_PER_OPERATION = 5
SEED = 20261201
_SUMMARY = re.compile(r"(\d+) generated, (\d+) passed")


async def test_no_request_gets_a_server_error(fleet_on_each_database: Fleet) -> None:
    fleet = fleet_on_each_database
    assert fleet.http is not None
    await fleet.start_agent("h1")
    authorization = fleet.http.headers.get("Authorization")
    argv = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{fleet.http.base_url}/openapi.json",
        "--checks=not_a_server_error",
        f"--max-examples={EXAMPLES_PER_OPERATION}",
        f"--seed={SEED}",
        "--workers=1",
        "--suppress-health-check=all",
        "--no-color",
        # A stream that runs until the client leaves: no answer to check. Its refusals are in
        # the authorization matrix, its ticks in test_live_events.
        "--exclude-path=/api/v1/events",
        *(["--header", f"Authorization:{authorization}"] if authorization else []),
    ]
    # Not measured by coverage (`patch = subprocess` would trace schemathesis itself): only
    # the server it sends to is drover, and that runs in this process.
    unmeasured = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=fleet.tmp,
        env=unmeasured,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    report = out.decode(errors="replace")
    assert process.returncode == 0, report[-8000:]
    counts = _SUMMARY.search(report)
    assert counts is not None, report[-2000:]
    generated, passed = int(counts[1]), int(counts[2])
    print(f"schemathesis: {generated} cases, {passed} passed")
    assert generated == passed > 100
