"""The authorization matrix: every route of the API, called as every kind of caller, allowed
or denied exactly as the table below says — and every denial on the audit trail.

The table names the permission each (method, path) needs. A route of the app that is not in
the table fails the test (so a new endpoint cannot ship without deciding who may call it), and
so does a row for a route that no longer exists.

Allowed means the answer the row expects: the route's success status, or for a request that
is valid but refused for the state of things a documented 409/422/404 (decommissioning a host
that is online: 409; logging out with a token, not a session: 422; OIDC routes on a server
without OIDC: 404). Anything else — a 404 because an earlier caller deleted the object, say —
fails the cell. An object a call uses up (an action cancelled, a user removed) is made afresh
for each caller allowed to call it. Denied means 401 without valid credentials, 403 with them.
Denials are never a 404: an outsider learns nothing about what exists.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi.routing import iter_route_contexts

from drover.bus.embedded import BusSecurity, EmbeddedNats
from drover.bus.trust import proof
from drover.bus.trust.keys import KeyPair, Kind
from drover.model.access import Grant, Permission, Principal, Role
from drover.server.api.app import create_app
from drover.server.api.gui import BUNDLE, PAGE_TREES, PAGES
from tests.conftest import eventually
from tests.harness import Fleet, fleet_of

pytestmark = [pytest.mark.authz, pytest.mark.asyncio(loop_scope="module")]

PASSWORD = "correct horse battery"
SHOP, SHOP_ENV = "shop", "production"
CONFIG = {
    "apps.yaml": (
        "applications:\n"
        f"  {SHOP}:\n    environment: {SHOP_ENV}\n    hosts: [h1]\n    services:\n"
        "      web: {command: [sleep, '3600'], stop_timeout: 2}\n"
        "  cart:\n    environment: staging\n    hosts: ['elsewhere-*']\n    services:\n"
        "      api: {command: [sleep, '3600']}\n"
    ),
    # Restarts of shop wait for three approvals: what the matrix requests never runs, and
    # the actions it approves, rejects and cancels stay in that state.
    "approvals.yaml": (
        "approvals:\n  - {name: four eyes, applications: [shop], kinds: [restart], required: 10}\n"
    ),
    "access.yaml": (
        "access:\n  team-shop:\n"
        f"    - {{role: operator, applications: [{SHOP}], environments: [{SHOP_ENV}]}}\n"
    ),
}

# --- who calls -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    name: str
    grants: tuple[Grant, ...] = ()
    groups: tuple[str, ...] = ()
    credentials: str = "token"  # token, none (anonymous), revoked

    @property
    def principal(self) -> Principal:
        """As the server resolves it (groups' bindings from CONFIG's access.yaml)."""
        by_group = (Grant(Role.OPERATOR, (SHOP,), (SHOP_ENV,)),) if self.groups else ()
        return Principal(self.name, frozenset(self.groups), self.grants + by_group, "token")


CALLERS = [
    Caller("anonymous", credentials="none"),
    Caller("revoked", (Grant(Role.ADMIN),), credentials="revoked"),
    Caller("nobody"),
    Caller("viewer-in", (Grant(Role.VIEWER, (SHOP,), (SHOP_ENV,)),)),
    Caller("viewer-out", (Grant(Role.VIEWER, ("cart",)),)),
    Caller("operator-in", (Grant(Role.OPERATOR, ("sh*",), (SHOP_ENV,)),)),
    Caller("operator-out", (Grant(Role.OPERATOR, (SHOP,), ("staging",)),)),
    Caller("group-operator", groups=("team-shop",)),
    Caller("approver-in", (Grant(Role.APPROVER, (SHOP,)),)),
    Caller("approver-out", (Grant(Role.APPROVER, ("cart",)),)),
    Caller("approver-all", (Grant(Role.APPROVER),)),
    Caller("admin-scoped", (Grant(Role.ADMIN, (SHOP,)),)),
    Caller("admin-all", (Grant(Role.ADMIN),)),
]

# --- what each route needs -------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """Who may call a route: `rule` decides for a caller that has valid credentials."""

    describe: str
    rule: Callable[[Principal], bool]
    anonymous: bool = False  # open to callers without credentials too


def on_shop(permission: Permission) -> Need:
    return Need(f"{permission} on {SHOP}", lambda p: p.may(permission, SHOP, SHOP_ENV))


def unscoped(permission: Permission) -> Need:
    return Need(f"{permission} unscoped", lambda p: p.may(permission))


def anywhere(permission: Permission) -> Need:
    return Need(f"{permission} in any scope", lambda p: p.may_somewhere(permission))


OPEN = Need("nothing", lambda p: True, anonymous=True)
SIGNED_IN = Need("valid credentials", lambda p: True)  # own things, and lists filtered to scope
HOST_H1 = Need("read on an application of h1", lambda p: p.may(Permission.READ, SHOP, SHOP_ENV))

GUI_PAGE = 200 if (BUNDLE / "index.html").is_file() else 404

R, A, AP, AU, AD = (Permission.READ, Permission.ACT, Permission.APPROVE, Permission.AUDIT,
                    Permission.ADMIN)  # fmt: skip

# (method, path) → what it needs, and the request that exercises it. `{…}` are filled from the
# objects the fixture makes; `body` may depend on the caller (a new user's name).
Body = dict[str, Any] | Callable[[Caller], dict[str, Any]] | None


@dataclass(frozen=True)
class Row:
    need: Need
    url: str
    body: Body = None
    ok: tuple[int, ...] = (200,)  # what an allowed call answers (see the module's docstring)
    fresh: str | None = None  # the object in `url` a call uses up: made anew for each caller
    stream: bool = False  # an event stream: only its status is read


NO_KEY = KeyPair.create(Kind.USER).public_key
H1_KEY: list[KeyPair] = []  # h1's agent's key, once the fixture has started it


def _proof(purpose: str, host: str, key: KeyPair | None = None) -> dict[str, Any]:
    return proof.signed_request(key or KeyPair.create(Kind.USER), purpose, host)


TABLE: dict[tuple[str, str], Row] = {
    ("GET", "/openapi.json"): Row(OPEN, "/openapi.json"),
    ("HEAD", "/openapi.json"): Row(OPEN, "/openapi.json"),
    ("GET", "/docs"): Row(OPEN, "/docs"),
    ("HEAD", "/docs"): Row(OPEN, "/docs"),
    ("GET", "/docs/oauth2-redirect"): Row(OPEN, "/docs/oauth2-redirect"),
    ("HEAD", "/docs/oauth2-redirect"): Row(OPEN, "/docs/oauth2-redirect"),
    ("GET", "/redoc"): Row(OPEN, "/redoc"),
    ("HEAD", "/redoc"): Row(OPEN, "/redoc"),
    ("GET", "/healthz"): Row(OPEN, "/healthz"),
    ("GET", "/info"): Row(OPEN, "/info"),
    ("GET", "/metrics"): Row(unscoped(R), "/metrics"),
    ("GET", "/connections"): Row(unscoped(R), "/connections"),
    ("GET", "/debug/tasks"): Row(unscoped(AD), "/debug/tasks"),
    ("POST", "/api/v1/login"): Row(OPEN, "/api/v1/login", {"name": "signer", "password": PASSWORD}),
    # This server has no OIDC: 404 says so.
    ("GET", "/auth/oidc/login"): Row(OPEN, "/auth/oidc/login", ok=(404,)),
    ("GET", "/auth/oidc/callback"): Row(OPEN, "/auth/oidc/callback?code=c&state=s", ok=(404,)),
    # A token, not a session: there is nothing to log out of (422 says to revoke it instead).
    ("POST", "/api/v1/logout"): Row(SIGNED_IN, "/api/v1/logout", {}, ok=(422,)),
    ("GET", "/api/v1/whoami"): Row(SIGNED_IN, "/api/v1/whoami"),
    ("GET", "/api/v1/hosts"): Row(SIGNED_IN, "/api/v1/hosts"),
    ("GET", "/api/v1/hosts/{host}"): Row(HOST_H1, "/api/v1/hosts/h1"),
    # h1 is online: decommissioning it is refused for that (409), and it stays for the rest.
    ("DELETE", "/api/v1/hosts/{host}"): Row(unscoped(AD), "/api/v1/hosts/h1", ok=(409,)),
    ("GET", "/api/v1/applications"): Row(SIGNED_IN, "/api/v1/applications"),
    ("GET", "/api/v1/applications/{name}"): Row(on_shop(R), f"/api/v1/applications/{SHOP}"),
    ("POST", "/api/v1/actions"): Row(
        on_shop(A),
        "/api/v1/actions",
        {"kind": "restart", "application": SHOP, "service": "web"},
        ok=(202,),
    ),
    ("POST", "/api/v1/actions/plan"): Row(
        on_shop(R), "/api/v1/actions/plan", {"application": SHOP}
    ),
    ("POST", "/api/v1/actions/{action_id}/cancel"): Row(
        on_shop(A), "/api/v1/actions/{cancel_me}/cancel", {}, fresh="cancel_me"
    ),
    ("GET", "/api/v1/actions"): Row(SIGNED_IN, "/api/v1/actions"),
    ("GET", "/api/v1/actions/{action_id}"): Row(on_shop(R), "/api/v1/actions/{read_me}"),
    ("POST", "/api/v1/actions/{action_id}/approve"): Row(
        on_shop(AP), "/api/v1/actions/{approve_me}/approve", {}
    ),
    ("POST", "/api/v1/actions/{action_id}/reject"): Row(
        on_shop(AP),
        "/api/v1/actions/{reject_me}/reject",
        {"reason": "not now"},
        fresh="reject_me",
    ),
    ("GET", "/api/v1/approvals"): Row(SIGNED_IN, "/api/v1/approvals"),
    # A restart has no output, only a command has: 422 says so (past the check).
    ("GET", "/api/v1/actions/{action_id}/output"): Row(
        on_shop(R), "/api/v1/actions/{read_me}/output", ok=(422,)
    ),
    ("GET", "/api/v1/actions/{action_id}/hosts/{host}/output"): Row(
        on_shop(R), "/api/v1/actions/{read_me}/hosts/h1/output", ok=(422,)
    ),
    ("POST", "/api/v1/overrides"): Row(
        on_shop(A),
        "/api/v1/overrides",
        {"application": SHOP, "status": "running", "reason": "matrix", "duration_s": 60},
        ok=(201,),
    ),
    ("GET", "/api/v1/overrides"): Row(SIGNED_IN, "/api/v1/overrides"),
    ("DELETE", "/api/v1/overrides/{override_id}"): Row(
        on_shop(A), "/api/v1/overrides/{clear_me}", ok=(204,), fresh="clear_me"
    ),
    ("GET", "/api/v1/config"): Row(anywhere(R), "/api/v1/config"),
    ("GET", "/api/v1/units"): Row(SIGNED_IN, "/api/v1/units"),
    ("GET", "/api/v1/audit"): Row(unscoped(AU), "/api/v1/audit?limit=1"),
    ("GET", "/api/v1/users"): Row(unscoped(AD), "/api/v1/users"),
    ("POST", "/api/v1/users"): Row(
        unscoped(AD), "/api/v1/users", lambda c: {"name": f"made-by-{c.name}"}, ok=(201,)
    ),
    ("GET", "/api/v1/users/{name}"): Row(unscoped(AD), "/api/v1/users/victim"),
    ("PATCH", "/api/v1/users/{name}"): Row(unscoped(AD), "/api/v1/users/victim", {"groups": ["x"]}),
    ("DELETE", "/api/v1/users/{name}"): Row(
        unscoped(AD), "/api/v1/users/{remove_me}", ok=(204,), fresh="remove_me"
    ),
    ("POST", "/api/v1/tokens"): Row(SIGNED_IN, "/api/v1/tokens", {"name": "matrix"}, ok=(201,)),
    ("GET", "/api/v1/tokens"): Row(SIGNED_IN, "/api/v1/tokens"),
    ("GET", "/api/v1/overview"): Row(SIGNED_IN, "/api/v1/overview"),
    ("GET", "/api/v1/applications/{name}/grid"): Row(
        on_shop(R), f"/api/v1/applications/{SHOP}/grid"
    ),
    ("GET", "/api/v1/events"): Row(SIGNED_IN, "/api/v1/events", stream=True),
    # The GUI's page for each of its routes, open to all (it signs in through the API); 404
    # where the bundle is not built, with a page that says how to build it.
    **{
        ("GET", path): Row(OPEN, path.replace("{rest:path}", "x"), ok=(GUI_PAGE,))
        for path in [*PAGES, *PAGE_TREES]
    },
    ("GET", "/favicon.svg"): Row(OPEN, "/favicon.svg", ok=(GUI_PAGE,)),
    ("DELETE", "/api/v1/tokens/{token_id}"): Row(
        unscoped(AD), "/api/v1/tokens/{someone_elses}", ok=(204,), fresh="someone_elses"
    ),
    # Hosts enroll without user credentials: a request signed by a new key waits (202); a
    # renewal signed by h1's enrolled key gets credentials. The key is all that counts.
    ("POST", "/api/v1/enroll"): Row(
        OPEN, "/api/v1/enroll", lambda c: _proof("enroll", f"new-{c.name}"), ok=(202,)
    ),
    ("POST", "/api/v1/enroll/renew"): Row(
        OPEN, "/api/v1/enroll/renew", lambda c: _proof("renew", "h1", H1_KEY[0])
    ),
    ("POST", "/api/v1/enrollment-tokens"): Row(
        unscoped(AD), "/api/v1/enrollment-tokens", {}, ok=(201,)
    ),
    ("GET", "/api/v1/enrollment-tokens"): Row(unscoped(AD), "/api/v1/enrollment-tokens"),
    ("GET", "/api/v1/enrollments"): Row(unscoped(AD), "/api/v1/enrollments"),
    # No request of that host waits, no key is enrolled for it: 404 says so (past the check).
    ("POST", "/api/v1/enrollments/{host}/approve"): Row(
        unscoped(AD), "/api/v1/enrollments/nobody/approve", {"public_key": NO_KEY}, ok=(404,)
    ),
    ("POST", "/api/v1/enrollments/{host}/reject"): Row(
        unscoped(AD), "/api/v1/enrollments/nobody/reject", {"public_key": NO_KEY}, ok=(404,)
    ),
    ("POST", "/api/v1/hosts/{host}/revoke"): Row(
        unscoped(AD), "/api/v1/hosts/nobody/revoke", ok=(404,)
    ),
    ("GET", "/api/v1/alerts"): Row(unscoped(R), "/api/v1/alerts"),
    ("GET", "/api/v1/silences"): Row(unscoped(R), "/api/v1/silences"),
    ("GET", "/api/v1/schedules"): Row(unscoped(R), "/api/v1/schedules"),
    ("POST", "/api/v1/silences"): Row(
        unscoped(AD),
        "/api/v1/silences",
        {"rule": "host-lost", "duration_s": 60, "reason": "patching"},
        ok=(201,),
    ),
    # No such silence: 404 says so (past the check).
    ("DELETE", "/api/v1/silences/{silence_id}"): Row(
        unscoped(AD), "/api/v1/silences/nothing", ok=(404,)
    ),
}


def allowed(row: Row, caller: Caller) -> bool:
    if caller.credentials != "token":
        return row.need.anonymous
    return row.need.rule(caller.principal)


# --- the fleet, once for the module ----------------------------------------------------------


@dataclass
class World:
    fleet: Fleet
    clients: dict[str, httpx.AsyncClient]
    objects: dict[str, str] = field(default_factory=dict)
    # How to make each object anew, for a call that uses it up.
    makers: dict[str, Callable[[], Awaitable[str]]] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp: Path = tmp_path_factory.mktemp("authz")
    nats = EmbeddedNats(tmp / "nats", security=BusSecurity.local(tmp / "bus"))
    await nats.start()
    try:
        async with fleet_of(nats, tmp, CONFIG) as fleet:
            await fleet.start_server()
            agent = await fleet.start_agent("h1")
            H1_KEY[:] = [KeyPair(agent.enrollment.seed_file.read_bytes().strip())]
            yield await _populate(fleet)
    finally:
        await nats.stop()


async def _populate(fleet: Fleet) -> World:
    assert fleet.server is not None and fleet.server.access is not None and fleet.http is not None
    accounts = fleet.server.access.accounts
    clients: dict[str, httpx.AsyncClient] = {}
    for caller in CALLERS:
        if caller.credentials == "none":
            clients[caller.name] = fleet.client_with_token(None)
            continue
        secret = await fleet.token_for(caller.name, *caller.grants, groups=caller.groups)
        clients[caller.name] = fleet.client_with_token(secret)
    [revoked] = await accounts.tokens.of("revoked")
    await accounts.revoke_token(revoked.id, by="test")
    await accounts.add_user("signer", by="test", password=PASSWORD)
    await accounts.add_user("victim", by="test")
    requester = await fleet.client_as("requester", Grant(Role.OPERATOR, (SHOP,)))
    await eventually(lambda: fleet.get(f"/api/v1/applications/{SHOP}"))

    async def held_action() -> str:
        made = await requester.post(
            "/api/v1/actions", json={"kind": "restart", "application": SHOP, "service": "web"}
        )
        assert made.status_code == 202 and made.json()["state"] == "pending-approval", made.text
        return str(made.json()["id"])

    async def override() -> str:
        assert fleet.http is not None
        made = await fleet.http.post(
            "/api/v1/overrides",
            json={
                "application": SHOP,
                "status": "running",
                "reason": "to clear",
                "duration_s": 600,
            },
        )
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    async def victim() -> str:
        name = f"victim-{uuid.uuid4().hex[:8]}"
        await accounts.add_user(name, by="test")
        return name

    async def others_token() -> str:
        issued = await accounts.create_token(
            "victim", name="theirs", expires_in=timedelta(days=1), by="test"
        )
        return issued.token.id

    makers: dict[str, Callable[[], Awaitable[str]]] = {
        "cancel_me": held_action,
        "read_me": held_action,
        "approve_me": held_action,
        "reject_me": held_action,
        "clear_me": override,
        "remove_me": victim,
        "someone_elses": others_token,
    }
    objects = {key: await make() for key, make in makers.items()}
    return World(fleet, clients, objects, makers)


# --- the tests -------------------------------------------------------------------------------


def app_routes() -> set[tuple[str, str]]:
    app = create_app(None)  # type: ignore[arg-type]  # only its routes are read
    return {
        (method, str(context.path))
        for context in iter_route_contexts(app.routes)
        for method in (getattr(context, "methods", None) or set())
    }


async def test_every_route_of_the_app_is_in_the_table_and_no_other() -> None:
    routes = app_routes()
    assert sorted(routes - TABLE.keys()) == [], "routes nobody decided who may call"
    assert sorted(TABLE.keys() - routes) == [], "rows for routes that are gone"


@dataclass(frozen=True)
class Cell:
    method: str
    path: str
    caller: str
    expected: str  # allow or deny
    status: int
    correlation: str


async def test_every_route_as_every_caller(world: World) -> None:
    cells: list[Cell] = []
    for (method, path), row in sorted(TABLE.items()):
        # Callers to be denied go first (objects an allowed call uses up are made afresh for
        # it, so the shared ones stay for every denial).
        for caller in sorted(CALLERS, key=lambda c: allowed(row, c)):
            cells.append(await _call(world, method, path, row, caller))

    wrong = [
        c
        for c in cells
        if (c.expected == "allow" and c.status not in TABLE[c.method, c.path].ok)
        or c.status >= 500
        or (
            c.expected == "deny"
            and c.status != (401 if c.caller in ("anonymous", "revoked") else 403)
        )
    ]
    assert wrong == [], "\n".join(
        f"{c.method} {c.path} as {c.caller}: expected {c.expected}, got {c.status}" for c in wrong
    )

    denials = await _denial_correlations(world)
    unrecorded = [c for c in cells if c.expected == "deny" and c.correlation not in denials]
    assert unrecorded == [], "denials not on the audit trail"
    # A revoked token is on record wherever it is shown, even to a route open to all.
    stray = [
        c
        for c in cells
        if c.expected == "allow" and c.caller != "revoked" and c.correlation in denials
    ]
    assert stray == [], "allowed calls recorded as denied"
    assert len(cells) == len(TABLE) * len(CALLERS)
    print(
        f"authz matrix: {len(cells)} cells ({len(TABLE)} routes × {len(CALLERS)} callers), "
        f"{sum(c.expected == 'deny' for c in cells)} denials"
    )


async def _call(world: World, method: str, path: str, row: Row, caller: Caller) -> Cell:
    expected = "allow" if allowed(row, caller) else "deny"
    objects = world.objects
    if row.fresh is not None and expected == "allow":
        objects = {**objects, row.fresh: await world.makers[row.fresh]()}
    url = row.url.format(**objects)
    body = row.body(caller) if callable(row.body) else row.body
    correlation = uuid.uuid4().hex
    client = world.clients[caller.name]
    async with client.stream(
        method, url, json=body, headers={"X-Request-Id": correlation}, follow_redirects=False
    ) as response:
        if not row.stream:
            await response.aread()
    # No cookie jar: a login's session cookie must not turn the next anonymous call into one.
    world.clients[caller.name].cookies.clear()
    return Cell(method, path, caller.name, expected, response.status_code, correlation)


async def _denial_correlations(world: World) -> set[str]:
    assert world.fleet.http is not None
    found: set[str] = set()
    until = None
    while True:  # every access.denied entry, a page at a time
        params: dict[str, Any] = {"kind": "access.denied", "limit": 1000}
        if until is not None:
            params["until"] = until
        page = (await world.fleet.http.get("/api/v1/audit", params=params)).json()
        found |= {e["correlation"] for e in page}
        if len(page) < 1000:
            return found
        until = page[-1]["at"]


async def test_lists_show_only_what_the_caller_may_read(world: World) -> None:
    def names(items: list[dict[str, Any]], key: str) -> set[str]:
        return {item[key] for item in items}

    async def get(caller: str, url: str) -> Any:
        response = await world.clients[caller].get(url)
        assert response.status_code == 200, response.text
        return response.json()

    assert names(await get("viewer-in", "/api/v1/applications"), "name") == {SHOP}
    assert names(await get("viewer-out", "/api/v1/applications"), "name") == {"cart"}
    assert names(await get("admin-all", "/api/v1/applications"), "name") == {SHOP, "cart"}
    assert await get("viewer-out", "/api/v1/hosts") == []
    assert names(await get("viewer-in", "/api/v1/hosts"), "host") == {"h1"}
    assert await get("viewer-out", "/api/v1/actions") == []
    assert await get("viewer-out", "/api/v1/overrides") == []
    assert await get("viewer-out", "/api/v1/units") == []
    assert await get("nobody", "/api/v1/approvals") == []
    assert {a["application"] for a in await get("viewer-in", "/api/v1/actions")} == {SHOP}


async def test_a_denial_does_not_tell_whether_the_thing_exists(world: World) -> None:
    outsider = world.clients["viewer-out"]
    for url in ("/api/v1/applications/shop", "/api/v1/applications/no-such-app"):
        denied = await outsider.get(url)
        assert denied.status_code == 403, denied.text
    for url in ("/api/v1/hosts/h1", "/api/v1/hosts/no-such-host"):
        assert (await outsider.get(url)).status_code == 403
    assert (await world.clients["admin-all"].get("/api/v1/applications/nope")).status_code == 404
    denied = await world.clients["operator-out"].post(
        "/api/v1/actions", json={"kind": "restart", "application": SHOP}
    )
    assert denied.json() == {
        "detail": f"operator-out may not act on {SHOP} ({SHOP_ENV}): needs operator"
    }
