"""What the API refuses, and how: an override that would get round an approval policy, command
parameters that could not be stored or would be read as options, ids that are no ids, a stray
Last-Event-ID; access to an action follows the environment it was requested in; the whole
output is served so that no browser takes it for a page. No bad input is ever a 5xx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from drover.bus.embedded import EmbeddedNats
from drover.model.access import Grant, Role
from tests.conftest import eventually
from tests.harness import Fleet, fleet_of, write_tree

POLICY = (
    "approvals:\n"
    "  - name: billing-stop\n"
    "    applications: [billing]\n"
    "    kinds: [stop]\n"
    "    required: 1\n"
    "    open_for: 3600\n"
)


def config(lab_environment: str = "staging") -> dict[str, str]:
    return {
        "groups.yaml": "groups:\n  all: {hosts: ['*']}\n",
        "hosts.yaml": "hosts:\n  h1: {}\n",
        "apps.yaml": (
            "applications:\n"
            "  billing:\n    environment: production\n    groups: [all]\n    services:\n"
            "      web: {command: [sleep, '3600'], stop_timeout: 2}\n"
            f"  lab:\n    environment: {lab_environment}\n    groups: [all]\n"
            "    services:\n      web: {command: [sleep, '3600'], stop_timeout: 2}\n"
            "    commands:\n"
            "      checkout:\n"
            "        argv: [echo, checkout, '{ref}', '--', '{path}']\n"
            "        params:\n"
            "          ref: {type: string, required: true}\n"
            "          path: {type: string, allow_dash: true, default: '.'}\n"
        ),
        "approvals.yaml": POLICY,
    }


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats, tmp_path: Path, database_url: str
) -> AsyncIterator[Fleet]:
    """A server and no agent: nothing here needs a host to answer. On SQLite and PostgreSQL."""
    async with fleet_of(nats_server, tmp_path, config()) as running:
        await running.start_server(database_url=database_url, poll=0.1)
        yield running


def override(application: str, status: str) -> dict[str, Any]:
    return {"application": application, "status": status, "reason": "maintenance"}


async def test_an_override_an_approval_policy_covers_is_refused_with_the_policy(
    fleet: Fleet,
) -> None:
    oscar = await fleet.client_as("oscar", Grant(Role.OPERATOR))
    refused = await oscar.post("/api/v1/overrides", json=override("billing", "stopped"))
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == (
        "an override to stopped on billing (production) would get round the approval policy "
        "'billing-stop', which covers stop: request the action instead (drover action stop "
        "billing), it runs once approved"
    )
    assert await fleet.get("/api/v1/overrides") == []
    # What the policy does not cover is as before: starting billing, stopping lab.
    for app, status in (("billing", "running"), ("lab", "stopped")):
        answer = await oscar.post("/api/v1/overrides", json=override(app, status))
        assert answer.status_code == 201, answer.text
    # And the action the message points to waits for its approval.
    held = await oscar.post("/api/v1/actions", json={"kind": "stop", "application": "billing"})
    assert held.status_code == 202, held.text
    assert held.json()["state"] == "pending-approval"


async def post_raw(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    """`body` as ASCII JSON: a lone surrogate goes as the escape `\\ud800`, as a client may
    send it (httpx itself would refuse to encode it)."""
    return await client.post(
        "/api/v1/actions",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


def checkout(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "command",
        "application": "lab",
        "command": "checkout",
        "params": params,
        "hosts": ["h1"],
    }


def refusal_of(answer: httpx.Response) -> tuple[list[Any], str]:
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    if isinstance(detail, str):
        return [], detail
    [error] = detail
    return error["loc"], error["msg"]


async def test_a_parameter_that_is_not_storable_text_is_refused_naming_it(fleet: Fleet) -> None:
    assert fleet.http is not None
    for value, why in (
        ("\ud800", "is not valid text: it holds a lone surrogate, which UTF-8 cannot encode"),
        ("main\x00", "must not contain a NUL character"),
    ):
        loc, msg = refusal_of(await post_raw(fleet.http, checkout({"ref": value})))
        assert (loc, msg) == (["body", "params", "ref"], f"Value error, {why}")
        loc, msg = refusal_of(await post_raw(fleet.http, checkout({value: "main"})))
        assert (loc[:2], loc[-1]) == (["body", "params"], "[key]")  # the name, as decoded
        assert msg == f"Value error, {why}" or "unicode string" in msg, msg
    loc, msg = refusal_of(await post_raw(fleet.http, checkout({"ref": "x" * 1025})))
    assert (loc, msg) == (["body", "params", "ref"], "Value error, longer than 1024 characters")
    wrong_type = (await post_raw(fleet.http, checkout({"ref": [1]}))).json()["detail"]
    assert {tuple(e["loc"][:3]) for e in wrong_type} == {("body", "params", "ref")}
    # Nothing refused was stored, and the list everyone reads still answers.
    everyone = await fleet.http.get("/api/v1/actions")
    assert (everyone.status_code, everyone.json()) == (200, [])


async def test_a_value_beginning_with_a_dash_is_refused_unless_allowed(fleet: Fleet) -> None:
    assert fleet.http is not None
    injected = await post_raw(fleet.http, checkout({"ref": "--output=/etc/cron.d/x"}))
    assert refusal_of(injected) == (
        [],
        "params.ref: '--output=/etc/cron.d/x' begins with '-', which the program could take "
        "for an option; the command's parameter must say allow_dash: true to accept it",
    )
    allowed = await post_raw(fleet.http, checkout({"ref": "main", "path": "-odd-name"}))
    assert allowed.status_code == 202, allowed.text
    assert allowed.json()["command"]["argv"] == ["echo", "checkout", "main", "--", "-odd-name"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/actions/a%00b"),
        ("GET", "/api/v1/actions/a%00b/output"),
        ("GET", "/api/v1/actions/a%00b/hosts/h1/output"),
        ("GET", "/api/v1/actions/abc/hosts/h%00/output"),
        ("POST", "/api/v1/actions/a%00b/cancel"),
        ("POST", "/api/v1/actions/a%00b/approve"),
        ("GET", "/api/v1/hosts/h%00"),
        ("DELETE", "/api/v1/hosts/h%00"),
        ("DELETE", "/api/v1/overrides/o%00"),
        ("GET", "/api/v1/actions/%C2%B2%E2%80%AE"),
    ],
)
async def test_an_id_that_is_no_id_is_a_422_never_a_database_error(
    fleet: Fleet, method: str, path: str
) -> None:
    assert fleet.http is not None
    answer = await fleet.http.request(method, path)
    assert answer.status_code == 422, answer.text


async def test_a_last_event_id_that_only_looks_like_digits_is_a_422(fleet: Fleet) -> None:
    assert fleet.http is not None
    action = await post_raw(fleet.http, checkout({"ref": "main"}))
    assert action.status_code == 202, action.text
    for stray in ("²".encode("latin-1"), b"\xb9\xb3", b"12a"):
        answer = await fleet.http.get(
            f"/api/v1/actions/{action.json()['id']}/output", headers=[(b"Last-Event-ID", stray)]
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"].startswith("Last-Event-ID ")


async def test_the_whole_output_is_never_taken_for_a_page(fleet: Fleet) -> None:
    assert fleet.http is not None
    action = (await post_raw(fleet.http, checkout({"ref": "main"}))).json()
    answer = await fleet.http.get(f"/api/v1/actions/{action['id']}/hosts/h1/output")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert answer.headers["content-disposition"] == f'inline; filename="{action["id"]}-h1.txt"'


async def test_an_action_is_authorized_in_the_environment_it_was_requested_in(
    fleet: Fleet,
) -> None:
    assert fleet.http is not None
    stella = await fleet.client_as("stella", Grant(Role.OPERATOR, environments=("staging",)))
    pat = await fleet.client_as("pat", Grant(Role.OPERATOR, environments=("production",)))
    requested = await stella.post("/api/v1/actions", json=checkout({"ref": "main"}))
    assert requested.status_code == 202, requested.text
    action_id = requested.json()["id"]

    write_tree(fleet.config_dir, config(lab_environment="production"))

    async def moved() -> bool:
        return bool((await fleet.get("/api/v1/applications/lab"))["environment"] == "production")

    await eventually(moved)
    # pat is an operator of production, where lab is now, but the action was staging's.
    for method, path in (
        ("GET", f"/api/v1/actions/{action_id}"),
        ("GET", f"/api/v1/actions/{action_id}/output"),
        ("GET", f"/api/v1/actions/{action_id}/hosts/h1/output"),
        ("POST", f"/api/v1/actions/{action_id}/cancel"),
    ):
        answer = await pat.request(method, path)
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["detail"] == "pat may not {} on lab (staging): needs {}".format(
            "act" if method == "POST" else "read", "operator" if method == "POST" else "viewer"
        )
    assert (await pat.get("/api/v1/actions")).json() == []
    # stella, who asked, still may: the action stays where it was requested.
    mine = await stella.get("/api/v1/actions")
    assert [a["id"] for a in mine.json()] == [action_id]
    assert (await stella.get(f"/api/v1/actions/{action_id}")).status_code == 200
    cancelled = await stella.post(f"/api/v1/actions/{action_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
