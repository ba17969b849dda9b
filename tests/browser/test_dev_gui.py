"""`make run` as a new user meets it: `drover dev` on the example config, the admin signs in with
the password it wrote, the overview shows the example fleet, and a service restarts from the GUI."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from playwright.async_api import Browser, expect

from drover.bus.embedded import free_port
from tests.browser.conftest import screenshot
from tests.browser.test_gui_flows import LIVE_TIMEOUT, action_id_of

DROVER = str(Path(sys.executable).parent / "drover")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "config"


@pytest.fixture
async def dev(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """`drover dev` on the example config; its URL and data dir, once every service reported."""
    port = free_port()
    data = tmp_path / "data"
    argv = ["dev", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)]
    argv += ["--config", str(EXAMPLE), "--host-id", "devhost"]
    log = await anyio.open_file(tmp_path / "dev.log", "w")
    proc = await asyncio.create_subprocess_exec(
        DROVER, *argv, stdout=log.wrapped, stderr=asyncio.subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _up(url, anyio.Path(data / "token"), proc)
        yield url, data
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await log.aclose()


async def _up(url: str, token_file: anyio.Path, proc: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        for _ in range(600):
            assert proc.returncode is None, f"drover dev exited with {proc.returncode}"
            if await token_file.exists():
                token = (await token_file.read_text()).strip()
                client.headers["Authorization"] = f"Bearer {token}"
                try:
                    overview = (await client.get("/api/v1/overview")).json()
                    apps = overview.get("applications", [])
                    if len(apps) == 3 and all(a["counts"]["unknown"] == 0 for a in apps):
                        return
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.2)
    pytest.fail("drover dev did not come up with the example fleet")


async def test_make_run_opens_on_the_example_fleet_and_restarts_a_service(
    browser: Browser, dev: tuple[str, Path]
) -> None:
    url, data = dev
    context = await browser.new_context(base_url=url, viewport={"width": 1360, "height": 760})
    page = await context.new_page()
    await page.goto("/")
    await page.wait_for_url("**/login**")
    await page.get_by_label("Name").fill("admin")
    password = await anyio.Path(data / "admin-password").read_text()
    await page.get_by_label("Password").fill(password.strip())
    await page.get_by_role("button", name="Sign in").click()

    for app in ("billing", "reports", "shop"):
        await expect(page.get_by_test_id(f"app-row-{app}")).to_be_visible(timeout=LIVE_TIMEOUT)
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    await screenshot(page, "dev-overview")

    await page.get_by_role("link", name="shop").first.click()
    await expect(page.get_by_test_id("cell-devhost-web")).to_have_attribute(
        "data-status", "running", timeout=LIVE_TIMEOUT
    )
    await page.get_by_test_id("select-service-web").check()
    await page.get_by_test_id("action-kind").select_option("restart")
    await page.get_by_test_id("run-button").click()
    await action_id_of(page)
    await expect(page.get_by_test_id("action-state")).to_have_text(
        "succeeded", timeout=LIVE_TIMEOUT
    )
    result = page.get_by_test_id("host-result-devhost")
    await expect(result).to_have_attribute("data-outcome", "succeeded")
    await expect(result).to_contain_text("shop/web: restarted")
