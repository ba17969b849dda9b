"""Authentication as a client meets it: tokens, password sessions with their cookies and CSRF
token, logout, the login rate limit, grants from the config's `access:`, users and tokens
through the API — and every refusal clear, and on the audit trail."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from drover.bus.embedded import EmbeddedNats
from drover.model.access import Grant, Role
from drover.server.auth.authenticator import CSRF_HEADER
from drover.server.auth.credentials import sha256
from drover.server.auth.settings import AuthSettings
from drover.store.audit import AuditEntry
from drover.store.tokens import ApiToken
from tests.conftest import eventually
from tests.e2e.conftest import Journaled, shop_config
from tests.e2e.test_approvals import config as approvals_config
from tests.e2e.test_approvals import request_restart
from tests.harness import Fleet, fleet_of, write_tree

PASSWORD = "correct horse battery"


@contextlib.asynccontextmanager
async def fleet_with(
    nats: EmbeddedNats, tmp: Path, journaled: Journaled, auth: AuthSettings
) -> AsyncIterator[Fleet]:
    web, _ = journaled("web")
    worker, _ = journaled("worker")
    async with fleet_of(nats, tmp, shop_config(web, worker)) as running:
        await running.start_server(auth=auth)
        yield running


async def add_user(fleet: Fleet, name: str, *grants: Grant, password: str = PASSWORD) -> None:
    assert fleet.server is not None and fleet.server.access is not None
    await fleet.server.access.accounts.add_user(name, by="test", grants=grants, password=password)


async def login(fleet: Fleet, name: str, password: str = PASSWORD) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fleet.base_url) as client:
        return await client.post("/api/v1/login", json={"name": name, "password": password})


def browser(fleet: Fleet, signed_in: httpx.Response) -> httpx.AsyncClient:
    """A client that sends the session's cookies, as a browser would, and no CSRF header."""
    cookies = "; ".join(f"{k}={v}" for k, v in signed_in.cookies.items())
    return httpx.AsyncClient(base_url=fleet.base_url, headers={"Cookie": cookies})


async def audit(fleet: Fleet, **params: str) -> list[dict[str, Any]]:
    assert fleet.http is not None
    found: list[dict[str, Any]] = (await fleet.http.get("/api/v1/audit", params=params)).json()
    return found


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header by cookie name."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


async def test_without_credentials_the_api_says_401_how_to_sign_in_and_keeps_a_record(
    fleet: Fleet,
) -> None:
    anonymous = fleet.client_with_token(None)
    response = await anonymous.get("/api/v1/hosts")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="drover"'
    assert "Authorization: Bearer" in response.json()["detail"]
    basic = await anonymous.get("/api/v1/hosts", headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401
    [denied, *_] = await audit(fleet, kind="access.denied")
    assert (denied["actor"], denied["subject"], denied["detail"]["reason"]) == (
        "anonymous",
        "/api/v1/hosts",
        "no credentials",
    )
    # what stays open
    assert fleet.server is not None
    fleet.server.counters.inc("test.marker")
    assert (await anonymous.get("/healthz")).status_code == 200
    info = await anonymous.get("/info")
    assert info.status_code == 200 and info.json()["counters"] == {}
    assert fleet.http is not None
    assert "test.marker" in (await fleet.http.get("/info")).json()["counters"]


async def test_a_token_works_until_it_is_revoked_or_expires(fleet: Fleet) -> None:
    alice = await fleet.client_as("alice", Grant(Role.VIEWER))
    created = await alice.post("/api/v1/tokens", json={"name": "ci", "expires_in_days": 7})
    assert created.status_code == 201, created.text
    token = created.json()
    assert token["secret"].startswith("drv_") and token["user"] == "alice"
    ci = fleet.client_with_token(token["secret"])
    assert (await ci.get("/api/v1/whoami")).json()["via"] == "token"

    [listed] = [t for t in (await alice.get("/api/v1/tokens")).json() if t["id"] == token["id"]]
    assert "secret" not in listed and listed["last_used_at"] is not None
    assert (await alice.delete(f"/api/v1/tokens/{token['id']}")).status_code == 204
    refused = await ci.get("/api/v1/whoami")
    assert refused.status_code == 401
    assert refused.json() == {"detail": f"API token {token['id']} was revoked"}
    again = await alice.delete(f"/api/v1/tokens/{token['id']}")
    assert again.status_code == 404

    assert fleet.server is not None and fleet.server.access is not None
    now = fleet.server.clock.now()
    expired = ApiToken("old", "alice", "old", now - timedelta(days=2), now - timedelta(days=1))
    await fleet.server.access.accounts.tokens.create(
        expired, sha256("drv_old"), AuditEntry("test", "token.created", "old", now)
    )
    late = await fleet.client_with_token("drv_old").get("/api/v1/whoami")
    assert late.status_code == 401 and "expired" in late.json()["detail"]
    unknown = await fleet.client_with_token("drv_nothing").get("/api/v1/whoami")
    assert unknown.json() == {"detail": "unknown API token"}

    reasons = [e["detail"]["reason"] for e in await audit(fleet, kind="access.denied")]
    assert reasons[:3] == ["unknown token", "token old expired", f"token {token['id']} revoked"]
    assert [e["kind"] for e in await audit(fleet, subject=token["id"])] == [
        "token.revoked",
        "token.created",
    ]


async def test_tokens_of_others_are_for_admins_only(fleet: Fleet) -> None:
    alice = await fleet.client_as("alice", Grant(Role.OPERATOR))
    bob = await fleet.client_as("bob", Grant(Role.VIEWER))
    bobs = (await bob.post("/api/v1/tokens", json={})).json()

    assert (await alice.post("/api/v1/tokens", json={"user": "bob"})).status_code == 403
    assert (await alice.get("/api/v1/tokens", params={"user": "bob"})).status_code == 403
    refused = await alice.delete(f"/api/v1/tokens/{bobs['id']}")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "alice may not admin: needs admin without a scope"
    assert (await alice.delete("/api/v1/tokens/no-such-id")).status_code == 403

    assert fleet.http is not None
    for_bob = await fleet.http.post("/api/v1/tokens", json={"user": "bob", "name": "job"})
    assert for_bob.status_code == 201 and for_bob.json()["user"] == "bob"
    everyone = await fleet.http.get("/api/v1/tokens", params={"user": "*"})
    assert {t["user"] for t in everyone.json()} >= {"admin", "alice", "bob"}
    assert (await fleet.http.delete(f"/api/v1/tokens/{bobs['id']}")).status_code == 204
    too_long = await fleet.http.post("/api/v1/tokens", json={"expires_in_days": 99999})
    assert too_long.status_code == 422


async def test_neither_a_token_nor_a_password_is_stored(fleet: Fleet, tmp_path: Path) -> None:
    assert fleet.http is not None
    added = await fleet.http.post(
        "/api/v1/users",
        json={"name": "dora", "password": PASSWORD, "grants": [{"role": "viewer"}]},
    )
    assert added.status_code == 201 and added.json()["has_password"]
    signed_in = await login(fleet, "dora")
    token = (await fleet.http.post("/api/v1/tokens", json={"user": "dora"})).json()["secret"]
    session_id = signed_in.cookies["drover_session"]

    stored = await asyncio.to_thread(
        lambda: b"".join(p.read_bytes() for p in tmp_path.glob("drover.db*"))
    )
    for secret in (PASSWORD, token, session_id):
        assert secret.encode() not in stored
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored


async def test_a_password_login_sets_a_strict_httponly_session_and_a_csrf_token(
    fleet: Fleet,
) -> None:
    await add_user(fleet, "alice", Grant(Role.OPERATOR))
    signed_in = await login(fleet, "alice")
    assert signed_in.status_code == 200, signed_in.text
    body = signed_in.json()
    assert body["name"] == "alice" and len(body["csrf_token"]) >= 40
    cookies = set_cookies(signed_in)
    session = cookies["drover_session"].lower()
    assert "httponly" in session and "samesite=strict" in session and "path=/" in session
    assert "secure" not in session  # plain http: a Secure cookie would never come back
    csrf = cookies["drover_csrf"].lower()
    assert "httponly" not in csrf and "samesite=strict" in csrf
    assert signed_in.cookies["drover_csrf"] == body["csrf_token"]

    async with browser(fleet, signed_in) as alice:
        whoami = (await alice.get("/api/v1/whoami")).json()
        assert (whoami["name"], whoami["via"]) == ("alice", "password")
        # A change needs the CSRF token: missing, wrong, then right.
        missing = await alice.post("/api/v1/tokens", json={})
        assert missing.status_code == 403 and "X-CSRF-Token" in missing.json()["detail"]
        wrong = await alice.post("/api/v1/tokens", json={}, headers={"X-CSRF-Token": "guess"})
        assert wrong.status_code == 403
        right = await alice.post(
            "/api/v1/tokens", json={}, headers={"X-CSRF-Token": body["csrf_token"]}
        )
        assert right.status_code == 201
    denials = await audit(fleet, kind="access.denied", actor="alice")
    assert [e["detail"]["reason"] for e in denials] == ["missing or wrong CSRF token"] * 2
    assert [e["kind"] for e in await audit(fleet, actor="alice", kind="auth.")] == ["auth.login"]


async def test_logout_ends_the_session_and_clears_the_cookies(fleet: Fleet) -> None:
    await add_user(fleet, "alice", Grant(Role.VIEWER))
    signed_in = await login(fleet, "alice")
    csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
    async with browser(fleet, signed_in) as alice:
        assert (await alice.post("/api/v1/logout")).status_code == 403  # CSRF here too
        out = await alice.post("/api/v1/logout", headers=csrf)
        assert out.status_code == 204
        assert 'drover_session=""' in out.headers.get_list("set-cookie")[0]
        after = await alice.get("/api/v1/whoami")
        assert after.status_code == 401 and "sign in again" in after.json()["detail"]
    assert fleet.http is not None
    with_token = await fleet.http.post("/api/v1/logout")
    assert with_token.status_code == 422 and "revoke" in with_token.json()["detail"]
    assert [e["kind"] for e in await audit(fleet, actor="alice", kind="auth.")] == [
        "auth.logout",
        "auth.login",
    ]


async def test_a_wrong_name_and_a_wrong_password_fail_alike(fleet: Fleet) -> None:
    await add_user(fleet, "alice", Grant(Role.VIEWER))
    no_user = await login(fleet, "mallory", PASSWORD)
    wrong = await login(fleet, "alice", "not the password")
    assert (no_user.status_code, no_user.json()) == (401, {"detail": "wrong name or password"})
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "wrong name or password"})
    assert "set-cookie" not in wrong.headers
    failed = await audit(fleet, kind="auth.login_failed")
    assert [(e["subject"], e["detail"]["reason"]) for e in failed] == [
        ("alice", "wrong password"),
        ("mallory", "no such user"),
    ]


async def test_too_many_failed_logins_are_throttled_by_name_and_by_address(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled
) -> None:
    limits = AuthSettings(login_failures_per_name=3, login_failures_per_source=5)
    async with fleet_with(nats_server, tmp_path, journaled_service, limits) as fleet:
        await add_user(fleet, "alice", Grant(Role.VIEWER))
        for _ in range(3):
            assert (await login(fleet, "alice", "guess")).status_code == 401
        throttled = await login(fleet, "alice")  # even the right password, from here, for now
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["Retry-After"]) <= 300
        assert "too many failed logins for 'alice' from 127.0.0.1" in throttled.json()["detail"]
        [entry] = await audit(fleet, kind="auth.login_throttled")
        assert entry["detail"] == {
            "failures": 3,
            "limit": 3,
            "which": "for 'alice' from 127.0.0.1",
        }

        # From one address, across names.
        for name in ("bob", "carol"):
            assert (await login(fleet, name, "guess")).status_code == 401
        await add_user(fleet, "dave", Grant(Role.VIEWER))
        from_here = await login(fleet, "dave")
        assert from_here.status_code == 429
        assert "from 127.0.0.1" in from_here.json()["detail"]


async def login_from(fleet: Fleet, source: str, name: str, password: str = PASSWORD) -> int:
    """A login as if from `source`, through a proxy the server trusts (X-Forwarded-For)."""
    async with httpx.AsyncClient(base_url=fleet.base_url) as client:
        response = await client.post(
            "/api/v1/login",
            json={"name": name, "password": password},
            headers={"X-Forwarded-For": source},
        )
    return response.status_code


async def test_nobody_locks_a_user_out_from_where_they_sign_in(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled
) -> None:
    limits = AuthSettings(
        login_failures_per_name=3,
        login_failures_per_name_anywhere=4,
        trusted_proxies=("127.0.0.1",),
    )
    async with fleet_with(nats_server, tmp_path, journaled_service, limits) as fleet:
        await add_user(fleet, "alice", Grant(Role.VIEWER))
        assert await login_from(fleet, "10.0.0.1", "alice") == 200  # her desk
        # Someone guesses from one address: refused there, even the right password...
        for _ in range(3):
            assert await login_from(fleet, "10.0.0.66", "alice", "guess") == 401
        assert await login_from(fleet, "10.0.0.66", "alice") == 429
        # ... but alice signs in from her own.
        assert await login_from(fleet, "10.0.0.1", "alice") == 200
        # Guessing spread over addresses: slowed down for alice's name from anywhere new, for
        # a short while (the name's window), still not from where she signs in.
        assert await login_from(fleet, "10.0.1.1", "alice", "guess") == 401
        async with httpx.AsyncClient(base_url=fleet.base_url) as client:
            spread = await client.post(
                "/api/v1/login",
                json={"name": "alice", "password": "guess"},
                headers={"X-Forwarded-For": "10.0.1.2"},
            )
        assert spread.status_code == 429
        assert "too many failed logins for 'alice';" in spread.json()["detail"]
        assert 1 <= int(spread.headers["Retry-After"]) <= 60
        assert await login_from(fleet, "10.0.0.1", "alice") == 200


async def test_parallel_wrong_logins_cannot_pass_the_limit(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled
) -> None:
    limits = AuthSettings(login_failures_per_name=5)
    async with fleet_with(nats_server, tmp_path, journaled_service, limits) as fleet:
        await add_user(fleet, "alice", Grant(Role.VIEWER))
        assert fleet.server is not None and fleet.server.access is not None
        passwords = fleet.server.access.sessions._passwords
        checked = 0
        verify = passwords.verify

        async def counting(stored: str | None, password: str) -> bool:
            nonlocal checked
            checked += 1
            return await verify(stored, password)

        passwords.verify = counting  # type: ignore[method-assign]
        async with httpx.AsyncClient(base_url=fleet.base_url, timeout=60) as client:
            answers = await asyncio.gather(
                *(
                    client.post("/api/v1/login", json={"name": "alice", "password": f"guess{n}"})
                    for n in range(40)
                )
            )
        statuses = sorted(a.status_code for a in answers)
        assert checked <= 5
        assert statuses.count(401) == checked
        assert statuses.count(429) == 40 - checked
        assert all("Retry-After" in a.headers for a in answers if a.status_code == 429)


async def test_a_forged_x_forwarded_for_does_not_change_the_source(fleet: Fleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.base_url) as client:
        refused = await client.post(
            "/api/v1/login",
            json={"name": "alice", "password": "guess"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
    assert refused.status_code == 401
    [failed] = await audit(fleet, kind="auth.login_failed")
    assert failed["detail"]["source"] == "127.0.0.1"


async def test_a_successful_login_forgives_earlier_failures(fleet: Fleet) -> None:
    await add_user(fleet, "alice", Grant(Role.VIEWER))
    for _ in range(4):
        await login(fleet, "alice", "typo")
    assert (await login(fleet, "alice")).status_code == 200
    for _ in range(4):
        await login(fleet, "alice", "typo")
    assert (await login(fleet, "alice")).status_code == 200


async def test_an_idle_session_ends(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled
) -> None:
    quick = AuthSettings(session_idle=timedelta(seconds=1))
    async with fleet_with(nats_server, tmp_path, journaled_service, quick) as fleet:
        await add_user(fleet, "alice", Grant(Role.VIEWER))
        async with browser(fleet, await login(fleet, "alice")) as alice:
            assert (await alice.get("/api/v1/whoami")).status_code == 200
            await asyncio.sleep(1.2)
            assert (await alice.get("/api/v1/whoami")).status_code == 401


async def test_behind_https_the_cookies_are_secure(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled
) -> None:
    https = AuthSettings(public_url="https://drover.example.com")
    async with fleet_with(nats_server, tmp_path, journaled_service, https) as fleet:
        await add_user(fleet, "alice", Grant(Role.VIEWER))
        cookies = set_cookies(await login(fleet, "alice"))
        assert "secure" in cookies["drover_session"].lower()
        assert "secure" in cookies["drover_csrf"].lower()


async def test_groups_get_their_grants_from_the_config_as_it_changes(fleet: Fleet) -> None:
    assert fleet.server is not None and fleet.server.access is not None
    await fleet.server.access.accounts.add_user("olga", by="test", groups=["team-shop"])
    olga = fleet.client_with_token(await fleet.token_for("olga", groups=["team-shop"]))
    assert (await olga.get("/api/v1/whoami")).json()["grants"] == []
    assert (await olga.get("/api/v1/applications")).json() == []

    write_tree(
        fleet.config_dir,
        {
            "access.yaml": (
                "access:\n"
                "  team-shop:\n"
                "    - {role: operator, applications: [shop], environments: [test]}\n"
                "    - {role: viewer, applications: ['shop*']}\n"
            )
        },
    )

    async def granted() -> list[dict[str, Any]]:
        grants: list[dict[str, Any]] = (await olga.get("/api/v1/whoami")).json()["grants"]
        return grants

    await eventually(granted)
    assert await granted() == [
        {"role": "operator", "applications": ["shop"], "environments": ["test"]},
        {"role": "viewer", "applications": ["shop*"], "environments": ["*"]},
    ]
    assert [a["name"] for a in (await olga.get("/api/v1/applications")).json()] == ["shop"]


async def test_admins_manage_users_and_others_may_not(fleet: Fleet) -> None:
    assert fleet.http is not None
    added = await fleet.http.post(
        "/api/v1/users",
        json={
            "name": "olga",
            "grants": [{"role": "operator", "applications": ["shop"]}],
            "groups": ["team-shop"],
            "password": PASSWORD,
        },
    )
    assert added.status_code == 201, added.text
    assert added.json()["grants"] == [
        {"role": "operator", "applications": ["shop"], "environments": ["*"]}
    ]
    for body, status, phrase in [
        ({"name": "olga"}, 409, "exists already"),
        ({"name": "bad name"}, 422, "name"),
        ({"name": "pat", "password": "short"}, 422, "at least 10 characters"),
        ({"name": "pat", "grants": [{"role": "boss"}]}, 422, "role"),
        ({"name": "pat", "grants": [{"role": "viewer", "applications": []}]}, 422, "applications"),
    ]:
        refused = await fleet.http.post("/api/v1/users", json=body)
        assert refused.status_code == status and phrase in refused.text, refused.text

    olga = await fleet.client_as("olga", Grant(Role.OPERATOR))
    assert (await olga.get("/api/v1/users")).status_code == 403
    assert (await olga.delete("/api/v1/users/admin")).status_code == 403

    disabled = await fleet.http.patch("/api/v1/users/olga", json={"disabled": True})
    assert disabled.status_code == 200 and disabled.json()["disabled_at"] is not None
    assert (await olga.get("/api/v1/whoami")).json() == {"detail": "user 'olga' is disabled"}
    assert (await login(fleet, "olga")).status_code == 401
    await fleet.http.patch("/api/v1/users/olga", json={"disabled": False})
    assert (await olga.get("/api/v1/whoami")).status_code == 200

    assert (await fleet.http.delete("/api/v1/users/admin")).status_code == 409  # not yourself
    assert (await fleet.http.delete("/api/v1/users/olga")).status_code == 204
    assert (await olga.get("/api/v1/whoami")).status_code == 401
    assert (await fleet.http.delete("/api/v1/users/olga")).status_code == 404
    assert [e["kind"] for e in await audit(fleet, subject="olga", kind="user.")] == [
        "user.removed",
        "user.changed",
        "user.changed",
        "user.changed",  # client_as gave olga its grants
        "user.added",
    ]


async def test_the_openapi_schema_names_both_ways_to_authenticate(fleet: Fleet) -> None:
    schema = (await fleet.client_with_token(None).get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["token"]["type"] == "http" and schemes["token"]["scheme"] == "bearer"
    assert (schemes["session"]["type"], schemes["session"]["in"]) == ("apiKey", "cookie")
    assert schema["paths"]["/api/v1/hosts"]["get"]["security"] == [{"token": []}, {"session": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]


async def test_a_broken_binding_is_reported_and_the_last_good_one_stays(fleet: Fleet) -> None:
    good = "access:\n  team-shop:\n    - {role: viewer}\n"
    write_tree(fleet.config_dir, {"access.yaml": good})
    olga = fleet.client_with_token(await fleet.token_for("olga", groups=["team-shop"]))

    async def grants() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await olga.get("/api/v1/whoami")).json()["grants"]
        return found

    await eventually(grants)
    write_tree(fleet.config_dir, {"access.yaml": good + "    - {role: boss}\n"})

    async def rejected() -> dict[str, Any] | None:
        assert fleet.http is not None
        error: dict[str, Any] | None = (await fleet.http.get("/api/v1/config")).json()["last_error"]
        return error

    await eventually(rejected)
    error = await rejected()
    assert error is not None
    [problem] = error["problems"]
    assert (problem["file"], problem["line"], problem["column"]) == ("access.yaml", 4, 14)
    assert "must be one of 'viewer', 'operator', 'approver', 'admin'" in problem["message"]
    assert await grants() == [{"role": "viewer", "applications": ["*"], "environments": ["*"]}]


async def test_odd_input_is_refused_clearly_on_each_database(fleet_on_each_database: Fleet) -> None:
    fleet = fleet_on_each_database
    assert fleet.http is not None
    anonymous = fleet.client_with_token(None)
    for name, status in (("a\x00b", 422), ("a b/c", 401), ("x" * 150, 401)):
        answer = await anonymous.post("/api/v1/login", json={"name": name, "password": "x"})
        assert answer.status_code == status, answer.text
    surrogate = '{"name": "alice", "password": "\\ud800"}'
    odd = await anonymous.post(
        "/api/v1/login", content=surrogate, headers={"content-type": "application/json"}
    )
    assert odd.status_code == 422
    for method, url in [
        ("GET", "/api/v1/users/a%00b"),
        ("PATCH", "/api/v1/users/a%00b"),
        ("DELETE", "/api/v1/users/a%00b"),
        ("DELETE", "/api/v1/tokens/a%00b"),
    ]:
        answer = await fleet.http.request(method, url, json={} if method == "PATCH" else None)
        assert answer.status_code == 404, (method, url, answer.text)
    assert (await fleet.http.get("/api/v1/tokens?user=a%00b")).status_code == 422
    # Denials of odd requests still go on record.
    assert (await anonymous.get("/api/v1/users/a%00b")).status_code == 401
    outsider = await fleet.client_as("outsider", Grant(Role.VIEWER, ("cart",)))
    assert (await outsider.get("/api/v1/applications/a%00b")).status_code == 403
    subjects = [e["subject"] for e in await audit(fleet, kind="access.denied")]
    assert subjects[:2] == ["a\\0b", "/api/v1/users/a\\0b"]
    nul_name = await fleet.http.post("/api/v1/tokens", json={"name": "a\x00b"})
    assert nul_name.status_code == 422


async def signed_in(fleet: Fleet, name: str, password: str = PASSWORD) -> httpx.AsyncClient:
    """A browser session of `name`, sending its CSRF token as the GUI does."""
    answer = await login(fleet, name, password)
    assert answer.status_code == 200, answer.text
    client = browser(fleet, answer)
    client.headers[CSRF_HEADER] = answer.json()["csrf_token"]
    fleet.clients.append(client)
    return client


async def test_four_eyes_count_only_credentials_their_holder_set(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    """An admin who makes a token for otto, resets otto's password, or makes a new approver,
    cannot then approve as them: only a credential its holder set counts."""
    async with fleet_of(nats_server, tmp_path, approvals_config(tmp_path, required=1)) as fleet:
        await fleet.start_server(poll=0.1)
        rita = await fleet.client_as("rita", Grant(Role.ADMIN), groups=["ops-leads"])
        await fleet.client_as("otto", Grant(Role.APPROVER), groups=["ops-leads"])
        first = (await request_restart(rita))["id"]

        async def approve(client: httpx.AsyncClient, action: str) -> httpx.Response:
            return await client.post(f"/api/v1/actions/{action}/approve", json={})

        # A token rita made for otto.
        minted = await rita.post("/api/v1/tokens", json={"user": "otto"})
        assert minted.status_code == 201 and minted.json()["created_by"] == "rita"
        refused = await approve(fleet.client_with_token(minted.json()["secret"]), first)
        assert refused.status_code == 403
        assert refused.json()["detail"].startswith(
            "approve with a credential you set yourself: this API token was made by rita"
        )
        # A password rita set for otto; and a token made with it is still rita's doing.
        reset = await rita.patch("/api/v1/users/otto", json={"password": "rita knows this one"})
        assert reset.status_code == 200 and reset.json()["password_set_by"] == "rita"
        otto = await signed_in(fleet, "otto", "rita knows this one")
        refused = await approve(otto, first)
        assert refused.status_code == 403
        assert "your password was set by rita; set your own" in refused.json()["detail"]
        laundered = await otto.post("/api/v1/tokens", json={})
        assert laundered.json()["created_by"] == "rita"
        refused = await approve(fleet.client_with_token(laundered.json()["secret"]), first)
        assert refused.status_code == 403 and "made by rita" in refused.json()["detail"]
        # A new approver rita made, with a password she chose.
        made = await rita.post(
            "/api/v1/users",
            json={
                "name": "eve",
                "grants": [{"role": "approver"}],
                "groups": ["ops-leads"],
                "password": PASSWORD,
            },
        )
        assert made.status_code == 201
        eve = await signed_in(fleet, "eve")
        refused = await approve(eve, first)
        assert refused.status_code == 403
        assert "your password was set by rita" in refused.json()["detail"]
        denied = await audit(fleet, kind="approval.refused")
        assert len(denied) == 4 and {e["actor"] for e in denied} == {"otto", "eve"}
        assert all(e["detail"]["reason"].startswith("approve with a credential") for e in denied)
        assert (await fleet.get(f"/api/v1/actions/{first}"))["state"] == "pending-approval"

        # Once they set their own password (no admin needed), their votes count.
        own = await otto.patch("/api/v1/users/otto", json={"password": "only otto knows"})
        assert own.status_code == 200 and own.json()["password_set_by"] == "otto"
        otto = await signed_in(fleet, "otto", "only otto knows")
        assert (await otto.patch("/api/v1/users/otto", json={"groups": []})).status_code == 403
        counted = await approve(otto, first)
        assert counted.status_code == 200, counted.text
        second = (await request_restart(rita))["id"]
        assert (
            await eve.patch("/api/v1/users/eve", json={"password": "eve's own"})
        ).status_code == 422
        assert (
            await eve.patch("/api/v1/users/eve", json={"password": "eve's very own"})
        ).status_code == 200
        eve = await signed_in(fleet, "eve", "eve's very own")
        assert (await approve(eve, second)).status_code == 200
