"""Signing in through an OpenID Connect provider the test runs (tests/oidc_provider.py): the
whole authorization code flow with PKCE, state and nonce as a browser would follow it, and every
way the answer can be wrong refused with a clear 4xx and no session."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from drover.bus.embedded import EmbeddedNats, free_port
from drover.model.access import Grant, Role
from drover.server.auth.settings import AuthSettings, OidcSettings
from tests.e2e.conftest import Journaled, shop_config
from tests.harness import Fleet, fleet_of
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider

ACCESS = (
    "access:\n  team-shop:\n    - {role: operator, applications: [shop], environments: [test]}\n"
)


@pytest.fixture
async def provider() -> AsyncIterator[OidcProvider]:
    running = OidcProvider()
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled, provider: OidcProvider
) -> AsyncIterator[Fleet]:
    secret_file = tmp_path / "oidc-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    port = free_port()
    auth = AuthSettings(
        public_url=f"http://127.0.0.1:{port}",
        oidc=OidcSettings(
            issuer=provider.issuer, client_id=CLIENT_ID, client_secret_file=secret_file
        ),
    )
    web, _ = journaled_service("web")
    worker, _ = journaled_service("worker")
    files = {**shop_config(web, worker), "access.yaml": ACCESS}
    async with fleet_of(nats_server, tmp_path, files) as running:
        await running.start_server(auth=auth, port=port)
        yield running


@contextlib.asynccontextmanager
async def browser(fleet: Fleet) -> AsyncIterator[httpx.AsyncClient]:
    """Keeps cookies like a browser; follows no redirect on its own, so the test sees each."""
    async with httpx.AsyncClient(base_url=fleet.base_url) as client:
        yield client


async def sign_in(client: httpx.AsyncClient) -> tuple[httpx.Response, dict[str, str]]:
    """The flow up to the callback: drover → provider → the callback URL the provider sends
    the browser to (not yet visited). Returns drover's first answer and the callback's query."""
    start = await client.get("/auth/oidc/login")
    assert start.status_code == 302, start.text
    at_provider = await client.get(start.headers["Location"])
    assert at_provider.status_code == 302, at_provider.text
    query = parse_qs(urlsplit(at_provider.headers["Location"]).query)
    return start, {key: values[0] for key, values in query.items()}


async def callback(client: httpx.AsyncClient, query: dict[str, str]) -> httpx.Response:
    return await client.get("/auth/oidc/callback", params=query)


async def audit(fleet: Fleet, **params: str) -> list[dict[str, Any]]:
    assert fleet.http is not None
    found: list[dict[str, Any]] = (await fleet.http.get("/api/v1/audit", params=params)).json()
    return found


async def test_a_person_signs_in_through_the_provider_and_gets_their_groups_grants(
    fleet: Fleet, provider: OidcProvider
) -> None:
    async with browser(fleet) as client:
        start, query = await sign_in(client)
        asked = parse_qs(urlsplit(start.headers["Location"]).query)
        assert asked["code_challenge_method"] == ["S256"] and asked["nonce"][0]
        assert asked["redirect_uri"] == [f"{fleet.base_url}/auth/oidc/callback"]
        state_cookie = start.headers["set-cookie"].lower()
        assert "httponly" in state_cookie and "samesite=lax" in state_cookie

        done = await callback(client, query)
        assert done.status_code == 200, done.text
        assert 'content="0;url=/"' in done.text
        assert {c.split("=")[0] for c in done.headers.get_list("set-cookie")} >= {
            "drover_session",
            "drover_csrf",
        }
        whoami = (await client.get("/api/v1/whoami")).json()
    assert whoami == {
        "name": "olga",
        "groups": ["team-shop"],
        "grants": [{"role": "operator", "applications": ["shop"], "environments": ["test"]}],
        "via": "oidc",
    }
    assert provider.token_requests[0]["code_verifier"]  # PKCE: the verifier went along
    [login] = await audit(fleet, kind="auth.login")
    assert (login["actor"], login["detail"]) == ("olga", {"via": "oidc"})
    [added] = await audit(fleet, kind="user.added", subject="olga")
    assert added["detail"]["source"] == "oidc"


async def test_the_groups_follow_the_provider_at_each_sign_in(
    fleet: Fleet, provider: OidcProvider
) -> None:
    for groups in (["team-shop"], ["team-billing", "team-shop"]):
        provider.user = {**provider.user, "groups": groups}
        async with browser(fleet) as client:
            _, query = await sign_in(client)
            assert (await callback(client, query)).status_code == 200
            assert (await client.get("/api/v1/whoami")).json()["groups"] == groups


async def test_without_a_preferred_username_the_subject_names_the_user(
    fleet: Fleet, provider: OidcProvider
) -> None:
    provider.user = {"sub": "u-1001", "groups": []}
    async with browser(fleet) as client:
        _, query = await sign_in(client)
        assert (await callback(client, query)).status_code == 200
        assert (await client.get("/api/v1/whoami")).json()["name"] == "u-1001"


@pytest.mark.parametrize(
    ("tamper", "rogue", "message"),
    [
        ({"nonce": "not-the-one-we-sent"}, False, "not for this sign-in: Invalid claim: 'nonce'"),
        ({"aud": "another-client"}, False, "not for this sign-in: Invalid claim: 'aud'"),
        ({"iss": "https://elsewhere.example"}, False, "Invalid claim: 'iss'"),
        ({"exp": 1_000_000_000}, False, "the id_token has expired"),
        ({"nonce": None}, False, "lacks a claim"),
        ({}, True, "signature does not verify"),
    ],
)
async def test_an_id_token_that_does_not_check_out_gets_no_session(
    fleet: Fleet, provider: OidcProvider, tamper: dict[str, Any], rogue: bool, message: str
) -> None:
    provider.tamper = tamper
    provider.sign_with_rogue_key = rogue
    async with browser(fleet) as client:
        _, query = await sign_in(client)
        refused = await callback(client, query)
        assert refused.status_code == 401, refused.text
        assert message in refused.json()["detail"]
        assert "drover_session" not in refused.headers.get("set-cookie", "")
        assert (await client.get("/api/v1/whoami")).status_code == 401
    [failed] = await audit(fleet, kind="auth.login_failed")
    assert message in failed["detail"]["reason"]


async def test_a_callback_out_of_turn_is_refused(fleet: Fleet) -> None:
    async with browser(fleet) as client:
        _, query = await sign_in(client)
        # Another browser's state (a login CSRF attempt), or none at all.
        mismatched = await callback(client, {**query, "state": "someone-elses"})
        assert mismatched.status_code == 400 and "does not match" in mismatched.text
        assert (await callback(client, {"state": query["state"]})).status_code == 400
        async with httpx.AsyncClient(base_url=fleet.base_url) as stranger:
            no_cookie = await stranger.get("/auth/oidc/callback", params=query)
            assert no_cookie.status_code == 400
        # The right one works once; the same callback again, even with the state cookie that
        # the first one cleared, does not.
        state_cookie = client.cookies["drover_oidc_state"]
        assert (await callback(client, query)).status_code == 200
        assert "drover_oidc_state" not in client.cookies
        async with httpx.AsyncClient(base_url=fleet.base_url) as replay:
            replayed = await replay.get(
                "/auth/oidc/callback",
                params=query,
                headers={"Cookie": f"drover_oidc_state={state_cookie}"},
            )
        assert replayed.status_code == 400 and "used or expired" in replayed.text


async def test_the_provider_refusing_is_said_so(fleet: Fleet) -> None:
    async with browser(fleet) as client:
        await client.get("/auth/oidc/login")
        refused = await client.get("/auth/oidc/callback", params={"error": "access_denied"})
        assert refused.status_code == 401 and "access_denied" in refused.text


async def test_a_name_of_a_local_user_is_not_taken_over(fleet: Fleet) -> None:
    await fleet.client_as("olga", Grant(Role.ADMIN))  # a local user of that name
    async with browser(fleet) as client:
        _, query = await sign_in(client)
        refused = await callback(client, query)
        assert refused.status_code == 409 and "local drover user" in refused.text
        assert (await client.get("/api/v1/whoami")).status_code == 401


async def test_without_oidc_settings_its_routes_say_so(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled
) -> None:
    web, _ = journaled_service("web")
    worker, _ = journaled_service("worker")
    async with fleet_of(nats_server, tmp_path / "plain", shop_config(web, worker)) as plain:
        await plain.start_server()
        async with browser(plain) as client:
            for path in ("/auth/oidc/login", "/auth/oidc/callback"):
                answer = await client.get(path)
                assert answer.status_code == 404
                assert answer.json() == {
                    "detail": "sign-in through OIDC is not configured on this server"
                }


async def signed_in_as(fleet: Fleet, client: httpx.AsyncClient) -> httpx.Response:
    _, query = await sign_in(client)
    return await callback(client, query)


async def test_a_user_is_the_providers_subject_not_a_name_it_may_reuse(
    fleet: Fleet, provider: OidcProvider
) -> None:
    async with browser(fleet) as client:
        assert (await signed_in_as(fleet, client)).status_code == 200  # olga, u-1001
    # Someone else at the provider now called olga: not a way into her drover user.
    provider.user = {"sub": "u-2002", "preferred_username": "olga", "groups": ["team-shop"]}
    async with browser(fleet) as client:
        refused = await signed_in_as(fleet, client)
        assert refused.status_code == 403
        assert "belongs to another identity at the provider" in refused.json()["detail"]
        assert "drover_session" not in refused.headers.get("set-cookie", "")
    [failed] = await audit(fleet, kind="auth.login_failed")
    assert "another identity" in failed["detail"]["reason"]
    # Olga renamed at the provider: still her drover user, under its first name.
    provider.user = {"sub": "u-1001", "preferred_username": "olga.k", "groups": ["team-shop"]}
    async with browser(fleet) as client:
        assert (await signed_in_as(fleet, client)).status_code == 200
        assert (await client.get("/api/v1/whoami")).json()["name"] == "olga"
    assert fleet.http is not None
    assert (await fleet.http.get("/api/v1/users/olga.k")).status_code == 404


def test_an_email_names_a_user_only_when_the_provider_verified_it() -> None:
    from drover.server.auth.oidc import _username
    from drover.server.errors import Unauthorized

    claims = {"sub": "u-1", "email": "olga@example.com"}
    for verified in (None, False, "true"):
        with pytest.raises(Unauthorized, match="'email' is not verified"):
            _username({**claims, "email_verified": verified}, "email")
    assert _username({**claims, "email_verified": True}, "email") == "olga@example.com"


async def test_removing_an_oidc_user_sticks_and_its_tokens_are_short(
    fleet: Fleet, provider: OidcProvider
) -> None:
    assert fleet.http is not None
    async with browser(fleet) as client:
        assert (await signed_in_as(fleet, client)).status_code == 200
        csrf = {"X-CSRF-Token": client.cookies["drover_csrf"]}
        made = await client.post("/api/v1/tokens", json={"expires_in_days": 90}, headers=csrf)
        assert made.status_code == 201, made.text
        token = made.json()
    lifetime = datetime.fromisoformat(token["expires_at"]) - datetime.fromisoformat(
        token["created_at"]
    )
    assert lifetime <= timedelta(hours=24)

    assert (await fleet.http.delete("/api/v1/users/olga")).status_code == 204
    assert (await fleet.http.get("/api/v1/users/olga")).json()["disabled_at"] is not None
    assert (await fleet.client_with_token(token["secret"]).get("/api/v1/whoami")).status_code == 401
    logins = len(await audit(fleet, kind="auth.login"))
    async with browser(fleet) as client:
        refused = await signed_in_as(fleet, client)
        assert refused.status_code == 403
        assert "disabled" in refused.json()["detail"]
        assert "Signed in" not in refused.text
        assert "drover_session" not in refused.headers.get("set-cookie", "")
    assert len(await audit(fleet, kind="auth.login")) == logins


async def test_an_issuer_without_tls_is_refused_unless_on_loopback(tmp_path: Path) -> None:
    from drover.ops.clock import SystemClock
    from drover.server.auth.service import AuthSetupError, build_access
    from drover.server.auth.settings import issuer_problem

    assert issuer_problem("http://127.0.0.1:9000/realms/x") is None
    assert issuer_problem("http://localhost:9000") is None
    assert issuer_problem("http://[::1]:9000") is None
    assert issuer_problem("https://id.example.com/realms/ops") is None
    for bad in ("http://id.example.com", "http://10.0.0.5", "ftp://id.example.com", "https://"):
        assert "must be an https:// URL" in (issuer_problem(bad) or "")
    secret = tmp_path / "secret"
    secret.write_text("x")
    settings = AuthSettings(
        public_url="https://drover.example.com",
        oidc=OidcSettings("http://id.example.com", CLIENT_ID, secret),
    )
    with pytest.raises(AuthSetupError, match="https"):
        build_access(None, None, SystemClock(), settings, lambda: None)  # type: ignore[arg-type]
