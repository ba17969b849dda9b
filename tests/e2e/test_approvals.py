"""Four-eyes approvals end to end, on a real nats-server with real agents: nothing reaches an
agent before the approvals a policy requires, and every way round them is refused with why."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from drover.bus import subjects
from drover.bus.embedded import EmbeddedNats
from drover.model.access import Grant, Role
from drover.store.approvals import ApprovalStore
from tests.busauth import superuser_client
from tests.conftest import eventually
from tests.e2e.test_discovery import DROVER
from tests.e2e.test_rollout import follow, service_pids, start_agents
from tests.harness import Fleet, fleet_of, write_tree

HOSTS = ["h1", "h2"]
POLICY = (
    "approvals:\n"
    "  - name: production changes\n"
    "    environments: [production]\n"
    "    kinds: [restart, stop]\n"
    "    required: {required}\n"
    "    from_groups: [ops-leads]\n"
    "    open_for: {open_for}\n"
)
COMMAND_POLICY = "  - {name: cache flushes, kinds: ['command:flush-*'], from_groups: [ops-leads]}\n"


def config(tmp: Path, required: int = 2, open_for: float = 3600) -> dict[str, str]:
    journal = tmp / "flushes"
    return {
        "groups.yaml": "groups:\n  all: {hosts: ['*']}\n",
        "hosts.yaml": "hosts:\n" + "".join(f"  {h}: {{}}\n" for h in HOSTS),
        "shop.yaml": (
            "applications:\n"
            "  shop:\n    environment: production\n    groups: [all]\n    services:\n"
            "      web: {command: [sleep, '3600'], stop_timeout: 2}\n"
            "  lab:\n    environment: staging\n    groups: [all]\n    services:\n"
            "      web: {command: [sleep, '3600'], stop_timeout: 2}\n"
            "  jobs:\n    environment: staging\n    hosts: [h1]\n    commands:\n"
            f"      flush-cache: {{argv: [sh, -c, 'echo flushed >> {journal}']}}\n"
            "      hello: {argv: [echo, hi]}\n"
        ),
        "approvals.yaml": POLICY.format(required=required, open_for=open_for) + COMMAND_POLICY,
    }


class People:
    """Everyone a test needs, each with a client of their own."""

    def __init__(self, clients: dict[str, httpx.AsyncClient]) -> None:
        self._clients = clients

    def __getattr__(self, name: str) -> httpx.AsyncClient:
        return self._clients[name]


async def people(fleet: Fleet) -> People:
    anyone = Grant(Role.APPROVER)
    made = {
        # the requester: an admin, so only four eyes stand between her and her own approval
        "rita": await fleet.client_as("rita", Grant(Role.ADMIN), groups=["ops-leads"]),
        "olga": await fleet.client_as("olga", anyone, groups=["ops-leads"]),
        "otto": await fleet.client_as("otto", anyone, groups=["ops-leads"]),
        "mallory": await fleet.client_as("mallory", anyone, groups=["developers"]),
        "sam": await fleet.client_as(
            "sam", Grant(Role.APPROVER, ("billing",)), groups=["ops-leads"]
        ),
        "oscar": await fleet.client_as("oscar", Grant(Role.OPERATOR), groups=["ops-leads"]),
    }
    # the same person under a second token
    made["olga_again"] = await fleet.client_as("olga", anyone, groups=["ops-leads"])
    return People(made)


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, config(tmp_path)) as running:
        await running.start_server(answer_grace=timedelta(seconds=1), poll=0.1)
        yield running


async def call(
    client: httpx.AsyncClient, path: str, status: int, body: dict[str, Any] | None = None
) -> Any:
    response = await (client.get(path) if body is None else client.post(path, json=body))
    assert response.status_code == status, response.text
    return response.json()


async def request_restart(requester: httpx.AsyncClient, application: str = "shop") -> Any:
    return await call(
        requester, "/api/v1/actions", 202, {"kind": "restart", "application": application}
    )


async def actions_published(fleet: Fleet) -> int:
    """How many requests the server ever put on the actions stream (acked ones included)."""
    nc = await superuser_client(fleet.nats)
    try:
        info = await nc.jetstream().stream_info(subjects.ACTIONS_STREAM)
        return int(info.state.last_seq)
    finally:
        await nc.close()


async def audit_kinds(fleet: Fleet, action_id: str) -> list[str]:
    entries = await fleet.get(f"/api/v1/audit?subject={action_id}&limit=100")
    return [e["kind"] for e in reversed(entries)]


@pytest.mark.slow
async def test_an_action_needing_two_approvals_is_sent_only_after_the_second(
    fleet: Fleet,
) -> None:
    before = await start_agents(fleet, HOSTS)
    who = await people(fleet)
    held = await request_restart(who.rita)
    assert (held["state"], held["rollout_state"]) == ("pending-approval", "pending-approval")
    assert held["approval"]["state"] == "pending"
    assert [(p["name"], p["required"], p["approved_by"]) for p in held["approval"]["policies"]] == [
        ("production changes", 2, [])
    ]
    assert {h["outcome"] for h in held["hosts"]} == {"pending"}

    await asyncio.sleep(1.5)  # the dispatcher has looked several times
    assert await actions_published(fleet) == 0
    first = await call(who.olga, f"/api/v1/actions/{held['id']}/approve", 200, {"comment": "ok"})
    assert first["state"] == "pending-approval"
    assert first["approval"]["votes"][0]["approver"] == "olga"
    assert first["approval"]["votes"][0]["comment"] == "ok"
    await asyncio.sleep(1.0)
    assert await actions_published(fleet) == 0
    assert await service_pids(fleet) == before  # nothing was restarted

    second = await call(who.otto, f"/api/v1/actions/{held['id']}/approve", 200, {})
    assert second["approval"]["state"] == "approved"
    assert second["released_at"] is not None
    final = await follow(fleet, held["id"])
    assert (final["state"], final["rollout_state"]) == ("succeeded", "succeeded")
    assert await actions_published(fleet) == len(HOSTS)
    after = await service_pids(fleet)
    assert all(after[h] != before[h] for h in HOSTS)
    kinds = await audit_kinds(fleet, held["id"])
    assert kinds[:5] == [
        "action.requested",
        "approval.requested",
        "approval.approved",
        "approval.approved",
        "action.released",
    ]


async def test_an_action_no_policy_covers_runs_at_once(fleet: Fleet) -> None:
    who = await people(fleet)
    staging = await request_restart(who.rita, "lab")
    assert staging["state"] == "running" and staging["approval"] is None
    nothing = await call(who.olga, f"/api/v1/actions/{staging['id']}/approve", 409, {})
    assert nothing["detail"] == (
        f"action {staging['id']} needs no approval: no approval policy covered it"
    )
    missing = await call(who.olga, "/api/v1/actions/nope/approve", 404, {})
    assert missing["detail"] == "no action 'nope'"
    await call(who.olga, "/api/v1/actions/no%00pe/approve", 422, {})
    await call(who.olga, "/api/v1/approvals?state=maybe", 422)


async def test_a_command_is_matched_by_its_name_and_runs_only_once_approved(
    fleet: Fleet, tmp_path: Path
) -> None:
    await fleet.start_agent("h1")
    who = await people(fleet)

    async def command(name: str) -> Any:
        body = {"kind": "command", "application": "jobs", "command": name, "hosts": ["h1"]}
        return await call(who.rita, "/api/v1/actions", 202, body)

    hello = await command("hello")  # no rule names it: it runs at once
    assert hello["approval"] is None
    assert (await follow(fleet, hello["id"]))["state"] == "succeeded"
    flush = await command("flush-cache")
    assert flush["state"] == "pending-approval"
    assert flush["approval"]["kind"] == "command:flush-cache"
    assert [p["name"] for p in flush["approval"]["policies"]] == ["cache flushes"]
    await asyncio.sleep(1.0)
    assert not (tmp_path / "flushes").exists()
    await call(who.olga, f"/api/v1/actions/{flush['id']}/approve", 200, {})
    assert (await follow(fleet, flush["id"]))["state"] == "succeeded"
    assert (tmp_path / "flushes").read_text() == "flushed\n"


async def test_every_way_round_the_four_eyes_is_refused_with_the_reason(fleet: Fleet) -> None:
    who = await people(fleet)
    held = await request_restart(who.rita)
    approve = f"/api/v1/actions/{held['id']}/approve"

    own = await call(who.rita, approve, 403, {})
    assert own["detail"] == (
        f"rita requested action {held['id']}: someone else must approve it (four eyes)"
    )
    operator = await call(who.oscar, approve, 403, {})
    assert operator["detail"] == "oscar may not approve on shop (production): needs approver"
    out_of_scope = await call(who.sam, approve, 403, {})
    assert out_of_scope["detail"] == "sam may not approve on shop (production): needs approver"
    other_group = await call(who.mallory, approve, 403, {})
    assert other_group["detail"] == (
        f"mallory (developers) is in none of the groups whose approval action {held['id']} "
        "needs: ops-leads"
    )
    # the inbox shows it to those whose approval would count, and to nobody else
    inbox = {
        name: [a["action_id"] for a in await call(getattr(who, name), "/api/v1/approvals", 200)]
        for name in ("rita", "olga", "mallory", "sam", "oscar")
    }
    assert inbox == {"rita": [], "olga": [held["id"]], "mallory": [], "sam": [], "oscar": []}

    await call(who.olga, approve, 200, {})
    replay = await call(who.olga, approve, 409, {})
    assert replay["detail"].startswith(f"olga already approved action {held['id']} at ")
    second_token = await call(who.olga_again, approve, 409, {})
    assert second_token["detail"] == replay["detail"]
    assert await call(who.olga, "/api/v1/approvals", 200) == []

    await call(who.otto, approve, 200, {})
    late = await call(who.mallory, approve, 409, {})
    assert late["detail"] == f"action {held['id']} is already approved (by olga, otto)"
    refused = await fleet.get(f"/api/v1/audit?kind=approval.refused&subject={held['id']}")
    assert sorted(e["actor"] for e in refused) == ["mallory", "mallory", "olga", "olga", "rita"]
    denied = await fleet.get("/api/v1/audit?kind=access.denied")
    assert {e["actor"] for e in denied} >= {"oscar", "sam"}


async def test_a_rejected_action_never_runs(fleet: Fleet) -> None:
    before = await start_agents(fleet, HOSTS)
    who = await people(fleet)
    held = await request_restart(who.rita)
    reject = f"/api/v1/actions/{held['id']}/reject"
    blank = await call(who.olga, reject, 422, {"reason": "  "})
    assert "must not be blank" in str(blank["detail"])
    await call(who.olga, reject, 422, {})
    await call(who.olga, reject, 422, {"reason": "no\x00way"})
    rejected = await call(who.olga, reject, 200, {"reason": "change freeze until Monday"})
    assert (rejected["state"], rejected["rollout_state"], rejected["halt_reason"]) == (
        "failed",
        "rejected",
        "rejected by olga: change freeze until Monday",
    )
    assert rejected["approval"]["state"] == "rejected"
    assert {(h["outcome"], h["sent_at"]) for h in rejected["hosts"]} == {("skipped", None)}
    after_all = await call(who.otto, f"/api/v1/actions/{held['id']}/approve", 409, {})
    assert after_all["detail"] == (
        f"action {held['id']} was rejected by olga: change freeze until Monday"
    )
    listed = await call(who.otto, "/api/v1/approvals?state=rejected", 200)
    assert [(a["action_id"], a["reason"]) for a in listed] == [
        (held["id"], "change freeze until Monday")
    ]
    await asyncio.sleep(1.0)
    assert await actions_published(fleet) == 0
    assert await service_pids(fleet) == before


async def test_the_requester_can_withdraw_a_pending_request(fleet: Fleet) -> None:
    who = await people(fleet)
    held = await request_restart(who.rita)
    cancelled = await call(who.rita, f"/api/v1/actions/{held['id']}/cancel", 200, {})
    assert (cancelled["rollout_state"], cancelled["approval"]["state"]) == (
        "cancelled",
        "cancelled",
    )
    too_late = await call(who.olga, f"/api/v1/actions/{held['id']}/approve", 409, {})
    assert too_late["detail"] == f"action {held['id']} was cancelled by rita before a decision"
    assert await actions_published(fleet) == 0


async def test_a_request_nobody_decides_in_time_expires_and_never_runs(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with fleet_of(nats_server, tmp_path, config(tmp_path, open_for=1)) as fleet:
        await fleet.start_server()
        who = await people(fleet)
        held = await request_restart(who.rita)

        async def expired() -> bool:
            action = await call(who.olga, f"/api/v1/actions/{held['id']}", 200)
            return bool(action["rollout_state"] == "approval-expired")

        await eventually(expired, timeout=10)
        action = await call(who.olga, f"/api/v1/actions/{held['id']}", 200)
        assert action["approval"]["state"] == "expired"
        assert {h["outcome"] for h in action["hosts"]} == {"skipped"}
        late = await call(who.olga, f"/api/v1/actions/{held['id']}/approve", 409, {})
        assert late["detail"].startswith(f"the approval of action {held['id']} expired at ")
        assert await actions_published(fleet) == 0
        assert "approval.expired" in await audit_kinds(fleet, held["id"])


async def test_a_broken_policy_is_reported_where_it_is_and_the_last_good_one_stays(
    fleet: Fleet,
) -> None:
    who = await people(fleet)
    bad = POLICY.format(required=2, open_for=3600).replace("[restart, stop]", "[restart, restrat]")
    write_tree(fleet.config_dir, {"approvals.yaml": bad})

    async def rejected() -> Any:
        found = await fleet.get("/api/v1/config")
        return found["last_error"]

    await eventually(rejected)
    error = (await fleet.get("/api/v1/config"))["last_error"]
    assert [(p["file"], p["line"], p["column"], p["message"]) for p in error["problems"]] == [
        (
            "approvals.yaml",
            4,
            22,
            "approvals[0].kinds[1]: unknown action kind 'restrat': expected start, stop, "
            "restart, ping or command:<name> (globs allowed)",
        )
    ]
    held = await request_restart(who.rita)  # still under the last good policy
    assert held["state"] == "pending-approval"

    # A good change applies to new requests; one already made keeps what it needed.
    write_tree(
        fleet.config_dir,
        {"approvals.yaml": POLICY.format(required=1, open_for=3600) + COMMAND_POLICY},
    )

    async def applied() -> bool:
        return (await fleet.get("/api/v1/config"))["last_error"] is None

    await eventually(applied)
    await call(who.olga, f"/api/v1/actions/{held['id']}/approve", 200, {})
    still = await call(who.olga, f"/api/v1/actions/{held['id']}", 200)
    assert still["approval"]["policies"][0]["required"] == 2
    assert still["state"] == "pending-approval"
    newer = await request_restart(who.rita)
    approved = await call(who.olga, f"/api/v1/actions/{newer['id']}/approve", 200, {})
    assert approved["approval"]["state"] == "approved"


def cli_as(fleet: Fleet, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "DROVER_TOKEN": token}
    return subprocess.run(
        [DROVER, *args, "--server", fleet.base_url],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


async def test_the_cli_holds_approves_and_rejects_and_says_why_it_refuses(fleet: Fleet) -> None:
    rita = await fleet.token_for("rita", Grant(Role.ADMIN), groups=["ops-leads"])
    olga = await fleet.token_for("olga", Grant(Role.APPROVER), groups=["ops-leads"])
    otto = await fleet.token_for("otto", Grant(Role.APPROVER), groups=["ops-leads"])

    async def run(token: str, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(cli_as, fleet, token, *args)

    asked = await run(rita, "action", "restart", "shop", "--json")
    assert asked.returncode == 3, asked.stdout + asked.stderr
    first = json.loads(asked.stdout)["id"]
    told = await run(rita, "action", "stop", "shop")
    assert told.returncode == 3, told.stdout + told.stderr
    assert "waits for approval until" in told.stdout
    assert "2 more approvals (production changes, from ops-leads)" in told.stdout

    own = await run(rita, "approve", first)
    assert own.returncode == 2
    assert f"rita requested action {first}: someone else must approve it" in own.stderr
    inbox = await run(olga, "approvals")
    assert inbox.returncode == 0, inbox.stderr
    assert first in inbox.stdout and "restart shop (production)" in inbox.stdout

    voted = await run(olga, "approve", first, "--comment", "ticket OPS-12 checked")
    assert voted.returncode == 0, voted.stderr
    assert voted.stdout.strip() == (
        f"action {first} (restart shop) waits for approval: "
        "1 more approval (production changes, from ops-leads)"
    )
    again = await run(olga, "approve", first)
    assert again.returncode == 2 and "one vote per person" in again.stderr
    released = await run(otto, "approve", first)
    assert released.returncode == 0, released.stderr
    assert f"action {first} (restart shop) approved by olga, otto: released" in released.stdout

    second = json.loads((await run(rita, "action", "restart", "shop", "--json")).stdout)["id"]
    no_reason = await run(otto, "reject", second)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    rejected = await run(otto, "reject", second, "--reason", "change freeze")
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.strip() == (
        f"action {second} (restart shop) rejected by otto: change freeze"
    )
    listed = await run(olga, "approvals", "--state", "rejected")
    assert second in listed.stdout and "change freeze" in listed.stdout
    shown = await run(olga, "actions")
    assert "rejected by otto: change freeze" in shown.stdout


async def test_a_cancel_racing_the_last_approval_stops_the_rollout_it_became(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel finds the action held; before it can withdraw the request, the second
    approval releases it. The cancel must then stop the rollout, not be refused."""
    await start_agents(fleet, HOSTS)
    who = await people(fleet)
    # One host a batch, a minute apart: the second batch is still to come when the cancel lands.
    body = {"kind": "restart", "application": "shop", "strategy": {"batch_size": 1, "pause_s": 60}}
    held = await call(who.rita, "/api/v1/actions", 202, body)
    await call(who.olga, f"/api/v1/actions/{held['id']}/approve", 200, {})
    withdraw = ApprovalStore.cancel

    async def approved_first(store: ApprovalStore, action_id: str, by: str, now: Any) -> bool:
        await call(who.otto, f"/api/v1/actions/{action_id}/approve", 200, {})
        return await withdraw(store, action_id, by, now)

    monkeypatch.setattr(ApprovalStore, "cancel", approved_first)
    cancelled = await call(
        who.rita, f"/api/v1/actions/{held['id']}/cancel", 200, {"abort_running": True}
    )
    assert cancelled["approval"]["state"] == "approved"
    final = await follow(fleet, held["id"])
    assert final["rollout_state"] == "cancelled"
    assert {h["host"]: h["outcome"] for h in final["hosts"]}["h2"] == "skipped"
    kinds = await audit_kinds(fleet, held["id"])
    assert "action.cancel_requested" in kinds and kinds.index("action.released") < kinds.index(
        "action.cancel_requested"
    )
