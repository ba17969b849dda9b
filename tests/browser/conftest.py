"""The GUI in a real browser: Debian's Chromium driven by Playwright, against a real stack
(nats-server, the server serving the built GUI, agents running real processes).

Chromium, or the built GUI, missing: the tests skip saying why, and fail in CI (CI=true).
Screenshots of every page go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from drover.bus.embedded import EmbeddedNats
from drover.model.access import Grant, Role
from drover.server.api.gui import BUNDLE
from tests.conftest import eventually
from tests.harness import Fleet, fleet_of

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("DROVER_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery"
# As ../shared/TESTING.md says: no calls home on a machine whose network is closed.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _needs(what: str, present: bool) -> None:
    if present:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser tests need {what} in CI")
    pytest.skip(f"no {what} here")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    _needs(f"Chromium at {CHROMIUM} (Debian package chromium)", shutil.which(CHROMIUM) is not None)
    _needs("the built GUI (make gui)", (BUNDLE / "index.html").is_file())
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, chromium_sandbox=False
        )
        try:
            yield launched
        finally:
            await launched.close()


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


async def signed_in(
    browser: Browser, fleet: Fleet, name: str, theme: Literal["light", "dark"] = "light"
) -> Page:
    """A page of a new browser context (its own cookies) signed in as `name` through the form."""
    context: BrowserContext = await browser.new_context(
        base_url=fleet.base_url, viewport={"width": 1360, "height": 860}, color_scheme=theme
    )
    page = await context.new_page()
    await page.goto("/")
    await page.wait_for_url("**/login**")
    await page.get_by_test_id("login-name").fill(name)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await page.get_by_test_id("user-name").filter(has_text=name).wait_for()
    return page


def shop_gui_config(web: list[str], worker: list[str]) -> dict[str, str]:
    def flow(argv: list[str]) -> str:
        return "[" + ", ".join(f"'{a}'" for a in argv) + "]"

    greet = (
        '[python3, -u, -c, "import sys, time\\nfor n in range(int(sys.argv[1])):\\n'
        "    print('hello', n, flush=True)\\n    time.sleep(0.4)\", '{count}']"
    )
    return {
        "groups.yaml": "groups:\n  all:\n    hosts: ['h*']\n",
        "hosts.yaml": "hosts:\n  h1:\n    labels: {dc: zrh}\n  h2:\n    labels: {dc: gva}\n",
        # web is observed: never started by the agent on its own, it is drifted until someone
        # restarts it. Restarts of shop need an ops lead's approval.
        "apps/shop.yaml": (
            "applications:\n"
            "  shop:\n"
            "    description: The web shop\n"
            "    owners: [team-shop]\n"
            "    environment: prod\n"
            "    groups: [all]\n"
            "    services:\n"
            f"      web:\n        command: {flow(web)}\n        policy: observe\n"
            "        stop_timeout: 2\n"
            f"      worker:\n        command: {flow(worker)}\n        stop_timeout: 2\n"
            "    commands:\n"
            "      greet:\n"
            "        description: Say hello, slowly\n"
            f"        argv: {greet}\n"
            "        params:\n"
            "          count: {type: integer, minimum: 1, maximum: 20, default: 6}\n"
        ),
        "policies.yaml": (
            "access:\n  ops-leads:\n    - role: approver\n"
            "approvals:\n"
            "  - {name: four-eyes, applications: [shop], kinds: [restart], required: 1,"
            " from_groups: [ops-leads]}\n"
        ),
    }


@pytest.fixture
async def gui_fleet(
    nats_server: EmbeddedNats,
    tmp_path: Path,
    journaled_service: Callable[[str], tuple[list[str], Path]],
) -> AsyncIterator[Fleet]:
    """shop on h1 and h2; olivia operates shop, adam approves, vic only looks, ada admins."""
    web, _ = journaled_service("web")
    worker, _ = journaled_service("worker")
    async with fleet_of(nats_server, tmp_path, shop_gui_config(web, worker)) as fleet:
        await fleet.start_server()
        assert fleet.server is not None and fleet.server.access is not None
        accounts = fleet.server.access.accounts
        people = {
            "olivia": ((Grant(Role.OPERATOR, ("shop",)),), ()),
            "adam": ((), ("ops-leads",)),
            "vic": ((Grant(Role.VIEWER),), ()),
            "ada": ((Grant(Role.ADMIN),), ()),
        }
        for name, (grants, groups) in people.items():
            await accounts.add_user(
                name, by="test", password=PASSWORD, grants=grants, groups=groups
            )
        await fleet.start_agent("h1")
        await fleet.start_agent("h2")
        await _stop_behind_the_agents_back(fleet, "h1", "web")
        yield fleet


async def _stop_behind_the_agents_back(fleet: Fleet, host: str, service: str) -> None:
    """Kill the service's process: under `observe` its agent reports it and leaves it so —
    drifted until someone acts."""

    async def placement() -> dict[str, Any]:
        app = await fleet.get("/api/v1/applications/shop")
        svc = next(s for s in app["services"] if s["name"] == service)
        return dict(next(p for p in svc["hosts"] if p["host"] == host))

    async def running_pid() -> int | None:
        found = await placement()
        return found["pid"] if found["status"] == "running" else None

    await eventually(running_pid)
    pid = await running_pid()
    assert pid is not None
    os.kill(pid, signal.SIGTERM)

    async def drifted() -> bool:
        return bool((await placement())["drift"])

    await eventually(drifted)
