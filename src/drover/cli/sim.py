"""`drover sim`: simulated hosts against a real server and bus (sim/launch.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from drover.agent.settings import nats_url_problem
from drover.cli import options
from drover.cli.client import CliError
from drover.cli.signals import run_until_signalled
from drover.ops import logging as drover_logging

if TYPE_CHECKING:
    from drover.sim.launch import SimSettings


@dataclass(frozen=True)
class Options:
    server_url: str
    agents: int
    services: int | None
    flap_rate: float
    processes: int
    data_dir: Path
    config: Path | None
    prefix: str


def sim(given: Options, heartbeat: float, nats: str | None) -> None:
    from drover.cli.credentials import find_token
    from drover.sim.launch import SimError, SimSettings, application_file

    if given.services is not None and given.config is None:
        raise CliError("--services needs --config: the file it writes places the services", 2)
    if not options.host_id(given.prefix + "0"):
        raise CliError(f"--prefix {given.prefix!r}: letters, digits, '-' and '_' only", 2)
    if nats is not None and (problem := nats_url_problem(nats)):
        raise CliError(f"--nats {nats!r}: {problem}", 2)
    token = find_token()
    if token is None:
        raise CliError(
            "drover sim enrolls its hosts with an admin's API token: sign in with "
            "`drover login`, or set DROVER_TOKEN or DROVER_TOKEN_FILE",
            2,
        )
    if given.config is not None:
        folder = options.data_dir(given.config / "applications", "--config")
        path = folder / "sim.yaml"
        services = 20 if given.services is None else given.services
        path.write_text(application_file(services, given.prefix))
        print(f"wrote {path}: the server's config at {given.config} places it")
    settings = SimSettings(
        server_url=given.server_url,
        admin_token=token,
        data_dir=options.data_dir(given.data_dir),
        agents=given.agents,
        processes=given.processes,
        prefix=given.prefix,
        heartbeat_interval=heartbeat,
        flap_rate=given.flap_rate,
        nats_url=nats,
    )
    drover_logging.configure("WARNING")
    try:
        asyncio.run(run_until_signalled(lambda stop: _run(settings, stop)))
    except SimError as err:
        raise CliError(str(err)) from None


async def _run(settings: SimSettings, stop: asyncio.Event) -> None:
    from drover.sim.launch import run

    await run(settings, stop)
