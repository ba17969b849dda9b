"""Host enrollment in the GUI, in a real browser against a real stack: an admin approves (or
rejects) a host waiting with `drover agent enroll` and no token, makes a one-time token a host
enrolls with, and revokes that host again from its page; a viewer sees none of it and asks the
server nothing about it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Request, expect

from drover.agent.enrollment import EnrollmentRefused, enroll
from tests.browser.conftest import screenshot, signed_in
from tests.browser.test_gui_flows import LIVE_TIMEOUT
from tests.conftest import eventually
from tests.harness import Fleet


async def test_an_admin_approves_one_waiting_host_and_rejects_another(
    browser: Browser, gui_fleet: Fleet, tmp_path: Path
) -> None:
    # Two hosts ask without a token, as `drover agent enroll --server URL` does, and wait.
    approved_key: list[str] = []
    rejected_key: list[str] = []
    approved = asyncio.create_task(
        enroll(
            gui_fleet.base_url, "web-9", tmp_path / "w", poll=0.2, on_pending=approved_key.append
        )
    )
    rejected = asyncio.create_task(
        enroll(
            gui_fleet.base_url, "web-8", tmp_path / "r", poll=0.2, on_pending=rejected_key.append
        )
    )
    try:
        await eventually(lambda: approved_key and rejected_key)
        ada = await signed_in(browser, gui_fleet, "ada")
        await ada.goto("/hosts")

        # Each request shows with the key its host printed, for the admin to compare.
        web9 = ada.get_by_test_id("enrollment-row-web-9")
        await expect(web9.get_by_test_id("enrollment-key")).to_have_text(
            approved_key[0], timeout=LIVE_TIMEOUT
        )
        web8 = ada.get_by_test_id("enrollment-row-web-8")
        await expect(web8.get_by_test_id("enrollment-key")).to_have_text(rejected_key[0])
        await expect(web9).to_contain_text("127.0.0.1")
        await expect(ada.get_by_test_id("pending-count")).to_have_text(" (2)")
        await screenshot(ada, "enrollment-pending")

        await web9.get_by_test_id("enrollment-approve").click()
        enrolled = await asyncio.wait_for(approved, 15)
        assert enrolled.host == "web-9"
        await expect(ada.get_by_test_id("enrollment-status")).to_contain_text("web-9 approved")
        await expect(web9).to_have_count(0)

        # Reject asks first; cancelled, nothing happens.
        await web8.get_by_test_id("enrollment-reject").click()
        question = web8.get_by_test_id("enrollment-reject-confirm")
        await expect(question).to_contain_text("Reject the request of web-8?")
        await expect(web8.get_by_test_id("enrollment-reject-no")).to_be_focused()
        await web8.get_by_test_id("enrollment-reject-no").click()
        await expect(question).to_have_count(0)
        await expect(web8).to_be_visible()
        assert not rejected.done()

        await web8.get_by_test_id("enrollment-reject").click()
        await web8.get_by_test_id("enrollment-reject-yes").click()
        with pytest.raises(EnrollmentRefused, match="rejected"):
            await asyncio.wait_for(rejected, 15)
        await expect(web8).to_have_count(0)
        await expect(ada.get_by_test_id("pending-none")).to_be_visible()
        states = {k["host"]: k["state"] for k in await gui_fleet.get("/api/v1/enrollments")}
        assert states["web-9"] == "enrolled" and states["web-8"] == "rejected"
    finally:
        for task in (approved, rejected):
            task.cancel()


async def test_a_token_made_in_the_gui_enrolls_a_host_its_page_then_revokes(
    browser: Browser, gui_fleet: Fleet, tmp_path: Path
) -> None:
    ada = await signed_in(browser, gui_fleet, "ada")
    await ada.goto("/hosts")
    await ada.get_by_test_id("enrollment-tokens-toggle").click()
    await ada.get_by_test_id("token-host").fill("web-7")
    await ada.get_by_test_id("token-expiry").select_option(label="15 min")
    await ada.get_by_test_id("token-create").click()

    # The secret is shown once, with the line to run on the host.
    secret_field = ada.get_by_test_id("token-secret")
    await expect(secret_field).to_be_focused()
    secret = await secret_field.input_value()
    assert secret
    command = await ada.get_by_test_id("token-command").input_value()
    assert command == (
        f"drover agent enroll --server {gui_fleet.base_url} --token {secret} --host-id web-7"
    )
    listed = ada.get_by_test_id("token-list").locator("li", has_text="for web-7")
    await expect(listed).to_have_attribute("data-state", "unused")
    await expect(listed).to_contain_text(re.compile(r"unused, expires in 1[45] min"))
    await screenshot(ada, "enrollment-token")

    enrolled = await enroll(gui_fleet.base_url, "web-7", tmp_path / "t", secret)
    assert enrolled.host == "web-7"

    # Seen again, the token is used, by web-7, and its secret is not shown any more.
    await ada.reload()
    await ada.get_by_test_id("enrollment-tokens-toggle").click()
    await expect(listed).to_have_attribute("data-state", "used")
    await expect(listed).to_contain_text("used by web-7")
    await expect(ada.get_by_test_id("token-secret")).to_have_count(0)

    # web-7's page lists its key; revoking asks first, saying what it does.
    await ada.goto("/hosts/web-7")
    credentials = ada.get_by_test_id("host-credentials")
    await expect(credentials.locator('tr[data-state="enrolled"]')).to_have_count(1)
    await ada.get_by_test_id("revoke-button").click()
    question = ada.get_by_test_id("revoke-button-confirm")
    await expect(question).to_contain_text("disconnected from the bus at once")
    await expect(question).to_contain_text("until it enrolls again")
    await ada.get_by_test_id("revoke-button-yes").click()
    await expect(ada.get_by_test_id("revoke-result")).to_contain_text(
        "web-7: 1 key revoked; the host is cut off the bus and must enroll again."
    )
    await expect(credentials.locator('tr[data-state="revoked"]')).to_have_count(1)
    await expect(ada.get_by_test_id("revoke-button")).to_have_count(0)
    await screenshot(ada, "host-revoked")
    keys = await gui_fleet.get("/api/v1/enrollments?host=web-7")
    assert [k["state"] for k in keys] == ["revoked"]


async def test_a_viewer_sees_no_enrollment_and_asks_nothing_about_it(
    browser: Browser, gui_fleet: Fleet
) -> None:
    vic = await signed_in(browser, gui_fleet, "vic")
    asked: list[str] = []

    def note(request: Request) -> None:
        asked.append(request.url)

    vic.on("request", note)
    await vic.goto("/hosts")
    await expect(vic.get_by_test_id("host-row-h1")).to_be_visible(timeout=LIVE_TIMEOUT)
    await vic.goto("/hosts/h1")
    await expect(vic.get_by_test_id("host-services")).to_be_visible(timeout=LIVE_TIMEOUT)
    await asyncio.sleep(0.5)  # any request the pages would make has been made by now
    await expect(vic.get_by_test_id("enrollment")).to_have_count(0)
    await expect(vic.get_by_test_id("host-credentials")).to_have_count(0)
    assert any("/api/v1/hosts" in url for url in asked)
    assert not [url for url in asked if "enroll" in url or "/revoke" in url]
