"""What people do in the GUI, in a real browser against a real stack: an operator finds a drifted
service and asks for a restart in two batches, an approver approves it from their own session,
both watch it roll out live, and a viewer can neither see nor forge an action."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import screenshot, signed_in
from tests.harness import Fleet

LIVE_TIMEOUT = 30_000  # ms: a rollout of two batches on real processes, seen without reload


async def action_id_of(page: Page) -> str:
    await page.wait_for_url(re.compile(r"/actions/[A-Za-z0-9_-]+$"))
    return page.url.rsplit("/", 1)[1]


async def test_restart_with_four_eyes_rolls_out_live(browser: Browser, gui_fleet: Fleet) -> None:
    olivia = await signed_in(browser, gui_fleet, "olivia")
    await expect(olivia.get_by_test_id("connection")).to_have_attribute("data-state", "live")

    # The overview shows shop with one of its four placements not ok, and leads to it.
    shop_row = olivia.get_by_test_id("app-row-shop")
    await expect(shop_row.locator('[data-bucket="ok"]')).to_have_text("ok 3", timeout=LIVE_TIMEOUT)
    await screenshot(olivia, "overview")
    await shop_row.get_by_role("link", name="shop").click()
    await olivia.wait_for_url("**/apps/shop**")

    # web was stopped behind its agent's back on h1, and is observed: drifted.
    web_h1 = olivia.get_by_test_id("cell-h1-web")
    await expect(web_h1).to_have_attribute("data-drift", "true", timeout=LIVE_TIMEOUT)
    await screenshot(olivia, "application")

    # Restart web on both hosts, one host per batch; the preview shows the batches first.
    await olivia.get_by_test_id("select-service-web").check()
    await olivia.get_by_test_id("action-kind").select_option("restart")
    await olivia.get_by_test_id("batch-size").fill("1")
    await olivia.get_by_test_id("preview-button").click()
    await expect(olivia.get_by_test_id("plan-batch-1")).to_contain_text("h1")
    await expect(olivia.get_by_test_id("plan-batch-2")).to_contain_text("h2")
    await olivia.get_by_test_id("run-button").click()
    action = await action_id_of(olivia)
    await expect(olivia.get_by_test_id("action-state")).to_have_text("pending-approval")
    await screenshot(olivia, "action-pending-approval")
    # The requester may not approve their own action: no button for it.
    await expect(olivia.get_by_test_id("approve-button")).to_have_count(0)

    # Adam, an ops lead, approves from his inbox in his own session.
    adam = await signed_in(browser, gui_fleet, "adam", theme="dark")
    await adam.goto("/approvals")
    row = adam.get_by_test_id(f"approval-row-{action}")
    await expect(row).to_be_visible()
    await screenshot(adam, "approvals-dark")
    await row.get_by_test_id("approve-button").click()
    await expect(adam.get_by_test_id(f"approval-row-{action}")).to_contain_text(
        "approved", timeout=LIVE_TIMEOUT
    )

    # Olivia's page follows without a reload: batch 1 (h1), then batch 2 (h2), then done.
    await expect(olivia.get_by_test_id("batch-1")).to_contain_text("h1")
    await expect(olivia.get_by_test_id("batch-2")).to_contain_text("h2")
    for host in ("h1", "h2"):
        await expect(olivia.get_by_test_id(f"host-result-{host}")).to_have_attribute(
            "data-outcome", "succeeded", timeout=LIVE_TIMEOUT
        )
    await expect(olivia.get_by_test_id("action-state")).to_have_text("succeeded")
    await screenshot(olivia, "action-succeeded")

    # Back on the application page, web is running and at its target on both hosts.
    await olivia.goto("/apps/shop")
    for host in ("h1", "h2"):
        cell = olivia.get_by_test_id(f"cell-{host}-web")
        await expect(cell).to_have_attribute("data-status", "running", timeout=LIVE_TIMEOUT)
        await expect(cell).to_have_attribute("data-drift", "false")


async def test_a_command_s_output_arrives_live(browser: Browser, gui_fleet: Fleet) -> None:
    olivia = await signed_in(browser, gui_fleet, "olivia")
    await olivia.goto("/apps/shop?q=h1")
    await expect(olivia.get_by_test_id("cell-h1-worker")).to_be_visible(timeout=LIVE_TIMEOUT)
    await olivia.get_by_test_id("select-host-h1").check()
    await olivia.get_by_test_id("action-kind").select_option("command")
    await olivia.get_by_label("Command").select_option("greet")
    await olivia.get_by_label("count").fill("6")
    await olivia.get_by_test_id("run-button").click()
    await action_id_of(olivia)
    output = olivia.get_by_test_id("output-h1")
    # The command prints a line every 0.4 s: the first is on the page before the last is made.
    await expect(output).to_contain_text("hello 0", timeout=LIVE_TIMEOUT)
    await expect(olivia.get_by_test_id("action-state")).to_have_text("running")
    await expect(output).to_contain_text("hello 5", timeout=LIVE_TIMEOUT)
    await expect(olivia.get_by_test_id("action-state")).to_have_text("succeeded")
    await screenshot(olivia, "action-output")


async def test_a_viewer_sees_no_action_and_a_forged_one_is_refused(
    browser: Browser, gui_fleet: Fleet
) -> None:
    vic = await signed_in(browser, gui_fleet, "vic")
    await vic.goto("/apps/shop")
    await expect(vic.get_by_test_id("grid")).to_be_visible()
    await expect(vic.get_by_test_id("run-button")).to_have_count(0)
    await expect(vic.get_by_test_id("preview-button")).to_have_count(0)
    # Forged from the page itself, with the session cookie and its CSRF token.
    status = await vic.evaluate(
        """async () => {
            const csrf = document.cookie.split('; ').find(c => c.startsWith('drover_csrf='));
            const r = await fetch('/api/v1/actions', {
                method: 'POST',
                headers: {'Content-Type': 'application/json',
                          'X-CSRF-Token': csrf ? csrf.split('=')[1] : ''},
                body: JSON.stringify({kind: 'restart', application: 'shop'}),
            });
            return r.status;
        }"""
    )
    assert status == 403
    denied = await gui_fleet.get("/api/v1/audit?kind=access.denied&actor=vic")
    assert any(e["detail"]["path"] == "/api/v1/actions" for e in denied)


async def test_every_page_deep_links_and_the_connection_state_shows(
    browser: Browser, gui_fleet: Fleet
) -> None:
    page = await signed_in(browser, gui_fleet, "ada")
    pages = {
        "hosts": "/hosts?q=h",
        "host": "/hosts/h1",
        "actions": "/actions",
        "approvals": "/approvals",
        "audit": "/audit?kind=auth.",
        "config": "/config",
    }
    for name, path in pages.items():
        await page.goto(path)
        await expect(page.locator("h1")).to_be_visible()
        await screenshot(page, name)
    await page.goto("/hosts?q=h2")
    await expect(page.get_by_test_id("host-row-h2")).to_be_visible(timeout=LIVE_TIMEOUT)
    await expect(page.get_by_test_id("host-row-h1")).to_have_count(0)

    # The server goes away: the page says so, and is live again once it is back.
    assert gui_fleet.server is not None and gui_fleet.server.http is not None
    port = gui_fleet.server.http.port
    await gui_fleet.running.pop(0).halt()
    connection = page.get_by_test_id("connection")
    await expect(connection).not_to_have_attribute("data-state", "live", timeout=LIVE_TIMEOUT)
    await screenshot(page, "reconnecting")
    await asyncio.sleep(0.5)
    await gui_fleet.start_server(port=port)
    await expect(connection).to_have_attribute("data-state", "live", timeout=LIVE_TIMEOUT)
