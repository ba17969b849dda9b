"""Users, API tokens, sessions and failed logins in the system of record, on SQLite and
PostgreSQL: every change with its audit entry, no secret kept, removal taking what hangs on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.model.access import Grant, Role, UserSource
from drover.store.audit import AuditEntry, AuditLog
from drover.store.database import open_database
from drover.store.logins import LoginLimit, LoginStore, OidcRequest, Throttled
from drover.store.sessions import Session, SessionStore
from drover.store.tokens import ApiToken, TokenStore
from drover.store.users import User, UserChange, UserStore

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ALICE = User(
    name="alice",
    source=UserSource.LOCAL,
    grants=(Grant(Role.OPERATOR, ("shop",), ("staging",)), Grant(Role.VIEWER)),
    groups=("team-shop",),
    created_at=T0,
)


def entry(kind: str, subject: str) -> AuditEntry:
    return AuditEntry("root", kind, subject, T0)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await open_database(database_url)
    yield engine
    await engine.dispose()


async def kinds(engine: AsyncEngine) -> list[str]:
    return [e.kind for e in reversed(await AuditLog(engine).query())]


async def test_a_user_is_added_once_read_back_changed_and_removed(engine: AsyncEngine) -> None:
    store = UserStore(engine)
    assert await store.add(ALICE, "$argon2id$hash", entry("user.added", "alice"))
    assert not await store.add(ALICE, None, entry("user.added", "alice"))  # exists already

    assert await store.get("alice") == User(**{**ALICE.__dict__, "has_password": True})
    assert await store.password_hash("alice") == (await store.get("alice"), "$argon2id$hash")
    assert await store.password_hash("nobody") is None
    assert await store.count() == 1

    changed = await store.change(
        "alice",
        UserChange(grants=(Grant(Role.ADMIN),), groups=("ops",), disabled_at=T0),
        entry("user.changed", "alice"),
    )
    assert changed is not None
    assert (changed.grants, changed.groups, changed.disabled) == (
        (Grant(Role.ADMIN),),
        ("ops",),
        True,
    )
    enabled = await store.change("alice", UserChange(enable=True), entry("user.changed", "alice"))
    assert enabled is not None and not enabled.disabled
    assert await store.change("nobody", UserChange(enable=True), entry("x", "nobody")) is None

    assert await store.remove("alice", entry("user.removed", "alice"))
    assert not await store.remove("alice", entry("user.removed", "alice"))
    assert await store.all() == []
    # one entry per change that happened, none for those that did not
    assert await kinds(engine) == ["user.added", "user.changed", "user.changed", "user.removed"]


async def test_a_token_is_kept_as_a_hash_found_by_it_and_revoked_once(engine: AsyncEngine) -> None:
    await UserStore(engine).add(ALICE, None, entry("user.added", "alice"))
    tokens = TokenStore(engine)
    token = ApiToken("t1", "alice", "ci", T0, expires_at=T0 + timedelta(days=1))
    await tokens.create(token, "ab" * 32, entry("token.created", "t1"))

    found = await tokens.by_secret("ab" * 32)
    assert found is not None and found[0] == token and found[1].name == "alice"
    assert await tokens.by_secret("cd" * 32) is None
    assert token.valid(T0) and not token.valid(T0 + timedelta(days=1))

    await tokens.used("t1", T0 + timedelta(minutes=5))
    assert await tokens.revoke("t1", T0 + timedelta(hours=1), entry("token.revoked", "t1"))
    assert not await tokens.revoke("t1", T0 + timedelta(hours=2), entry("token.revoked", "t1"))
    assert not await tokens.revoke("t9", T0, entry("token.revoked", "t9"))
    [listed] = await tokens.of("alice")
    assert (listed.last_used_at, listed.revoked_at) == (
        T0 + timedelta(minutes=5),
        T0 + timedelta(hours=1),
    )
    assert not listed.valid(T0)
    assert await tokens.of("bob") == [] and len(await tokens.of(None)) == 1
    assert await kinds(engine) == ["user.added", "token.created", "token.revoked"]


async def test_removing_a_user_takes_its_tokens_and_sessions(engine: AsyncEngine) -> None:
    await UserStore(engine).add(ALICE, None, entry("user.added", "alice"))
    await TokenStore(engine).create(ApiToken("t1", "alice", "ci", T0), "ab" * 32, entry("t", "t1"))
    session = Session(
        "alice", "csrf", "password", T0, T0 + timedelta(hours=12), T0 + timedelta(hours=1)
    )
    await SessionStore(engine).open("cd" * 32, session, entry("auth.login", "alice"))

    assert await UserStore(engine).remove("alice", entry("user.removed", "alice"))
    assert await TokenStore(engine).by_secret("ab" * 32) is None
    assert await SessionStore(engine).find("cd" * 32) is None


async def test_a_session_ends_at_its_idle_or_absolute_expiry_and_is_purged(
    engine: AsyncEngine,
) -> None:
    await UserStore(engine).add(ALICE, None, entry("user.added", "alice"))
    sessions = SessionStore(engine)
    session = Session(
        "alice", "csrf", "password", T0, T0 + timedelta(hours=12), T0 + timedelta(hours=1)
    )
    await sessions.open("cd" * 32, session, entry("auth.login", "alice"))

    found = await sessions.find("cd" * 32)
    assert found is not None and found[0] == session and found[1].name == "alice"
    assert session.valid(T0 + timedelta(minutes=59))
    assert not session.valid(T0 + timedelta(hours=1))  # idle
    await sessions.used("cd" * 32, T0 + timedelta(hours=13))
    moved = await sessions.find("cd" * 32)
    assert moved is not None and not moved[0].valid(T0 + timedelta(hours=12))  # absolute

    assert await sessions.purge(T0 + timedelta(hours=2)) == 0
    assert await sessions.purge(T0 + timedelta(hours=12)) == 1
    assert await sessions.find("cd" * 32) is None
    assert not await sessions.close("cd" * 32, entry("auth.logout", "alice"))


def _limits(name: str, source: str, attempts: int) -> list[LoginLimit]:
    window = timedelta(minutes=5)
    return [
        LoginLimit("pair", {"name": name, "source": source}, attempts, window),
        LoginLimit("source", {"source": source}, attempts + 1, window),
    ]


async def test_login_attempts_are_recorded_before_checked_counted_and_forgiven_by_a_login(
    engine: AsyncEngine,
) -> None:
    await UserStore(engine).add(ALICE, None, entry("user.added", "alice"))
    logins = LoginStore(engine)
    old, known = T0 - timedelta(hours=1), T0 - timedelta(days=30)

    async def attempt(name: str, source: str, minute: int, attempts: int = 2) -> int | Throttled:
        at = T0 + timedelta(minutes=minute)
        return await logins.attempt(name, source, at, _limits(name, source, attempts), old, known)

    first = await attempt("alice", "10.0.0.1", 0)
    second = await attempt("alice", "10.0.0.1", 1)  # the first is pending: it counts
    assert isinstance(first, int) and isinstance(second, int)
    refused = await attempt("alice", "10.0.0.1", 2)
    assert isinstance(refused, Throttled) and refused.limit.which == "pair"
    assert (refused.attempts, refused.free_at) == (2, T0 + timedelta(minutes=5))
    # Another address is another pair; the refused attempt was not recorded.
    elsewhere = await attempt("alice", "10.0.0.2", 2)
    assert isinstance(elsewhere, int)
    await logins.failed(first, entry("auth.login_failed", "alice"))
    # A sign-in forgives the pair's failures (not those from elsewhere) and is remembered.
    await logins.succeeded(second, "alice", "10.0.0.1")
    assert await logins.known_pair("alice", "10.0.0.1")
    assert not await logins.known_pair("alice", "10.0.0.2")
    again = await attempt("alice", "10.0.0.1", 3)
    assert isinstance(again, int)
    # One address, any names.
    assert isinstance(await attempt("bob", "10.0.0.2", 3, attempts=1), int)
    throttled = await attempt("carol", "10.0.0.2", 3, attempts=1)
    assert isinstance(throttled, Throttled) and throttled.limit.which == "source"


async def test_an_oidc_login_under_way_is_taken_once(engine: AsyncEngine) -> None:
    logins = LoginStore(engine)
    request = OidcRequest("nonce", "verifier", T0, T0 + timedelta(minutes=10))
    await logins.begin_oidc("ef" * 32, request)
    assert await logins.take_oidc("ef" * 32) == request
    assert await logins.take_oidc("ef" * 32) is None
