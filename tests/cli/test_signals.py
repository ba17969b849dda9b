"""A shutdown that does not finish is bounded and says what was still running."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from drover.cli.signals import run_until_signalled
from tests.conftest import eventually

STUCK = textwrap.dedent(
    """
    import asyncio, logging, sys
    from drover.cli.signals import run_until_signalled

    async def stuck_forever(stop):
        await stop.wait()
        print("draining", flush=True)
        await asyncio.sleep(3600)  # a drain that never ends

    logging.basicConfig(level=logging.INFO)
    asyncio.run(run_until_signalled(stuck_forever, shutdown_bound=float(sys.argv[1])))
    """
)


def start(bound: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK, str(bound)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # let it install its handlers
    return proc


@pytest.mark.parametrize(
    ("bound", "signals", "why"),
    [
        (1.0, [signal.SIGTERM], "still draining after 1.0s"),
        (300.0, [signal.SIGINT, signal.SIGINT], "second SIGINT: exiting without draining"),
    ],
)
def test_a_stuck_drain_ends_with_the_pending_tasks_named(
    bound: float, signals: list[signal.Signals], why: str
) -> None:
    proc = start(bound)
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.3)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "draining" in out
    assert why in err
    assert "stuck_forever" in err or "tasks still pending" in err


async def test_sighup_reloads_a_failed_reload_is_logged_and_none_once_draining(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reloads: list[int] = []

    def reload() -> None:
        reloads.append(len(reloads) + 1)
        if len(reloads) == 1:
            raise RuntimeError("bad settings")

    async def main(stop: asyncio.Event) -> None:
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: reloads == [1], timeout=5)
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: reloads == [1, 2], timeout=5)
        stop.set()
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: "SIGHUP while draining: not reloading" in caplog.text, 5)

    with caplog.at_level(logging.INFO):
        await asyncio.wait_for(run_until_signalled(main, on_reload=reload), 10)
    assert reloads == [1, 2]
    assert "reload failed; going on as before" in caplog.text
    assert "bad settings" in caplog.text
