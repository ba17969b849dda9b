"""Enrollment over the API, as `drover agent enroll` does it: one-time tokens (used once, before
they expire, by the host they name), requests an admin approves or rejects, renewals that need
the key, and what the host gets — credentials nats-server takes, for its key only."""

from __future__ import annotations

import asyncio
import base64
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest

from drover.agent.enrollment import Enrollment, EnrollmentRefused, enroll, host_key, renew
from drover.bus.connection import Bus, BusSettings
from drover.bus.trust import permissions, proof
from drover.bus.trust.credentials import BusIdentity
from drover.bus.trust.jwt import decode
from drover.bus.trust.keys import KeyPair, Kind
from drover.ops.counters import Counters
from tests.conftest import eventually
from tests.harness import Fleet

pytestmark = pytest.mark.authz


async def new_token(fleet: Fleet, **body: Any) -> str:
    assert fleet.http is not None
    response = await fleet.http.post("/api/v1/enrollment-tokens", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


async def test_a_token_enrolls_one_host_once_and_its_credentials_open_the_bus(
    fleet: Fleet, tmp_path: Path
) -> None:
    token = await new_token(fleet)
    enrolled = await enroll(fleet.base_url, "web-1", tmp_path / "web-1", token)
    assert enrolled.host == "web-1"
    assert (enrolled.seed_file.stat().st_mode & 0o777) == 0o600
    claims = decode(enrolled.jwt_file.read_text())
    assert claims["sub"] == host_key(tmp_path / "web-1").public_key
    assert claims["name"] == "web-1"
    assert "drover.result.web-1" in claims["nats"]["pub"]["allow"]

    bus = Bus(enrolled.bus_settings(BusSettings(name="probe")), Counters())
    await asyncio.wait_for(bus.connect(), 10)
    assert bus.is_connected
    await bus.close()

    with pytest.raises(EnrollmentRefused, match="used already"):
        await enroll(fleet.base_url, "web-2", tmp_path / "web-2", token)
    keys = await fleet.get("/api/v1/enrollments?host=web-1")
    assert [(k["state"], k["via"] != "") for k in keys] == [("enrolled", True)]
    kinds = [e["kind"] for e in await fleet.get("/api/v1/audit?subject=web-1")]
    assert "host.enrolled" in kinds


async def test_expired_tokens_and_tokens_for_other_hosts_are_refused(
    fleet: Fleet, tmp_path: Path
) -> None:
    short = await new_token(fleet, expires_in_s=1)
    await asyncio.sleep(1.2)
    with pytest.raises(EnrollmentRefused, match="expired"):
        await enroll(fleet.base_url, "web-1", tmp_path / "a", short)
    for_db = await new_token(fleet, host="db-1")
    with pytest.raises(EnrollmentRefused, match="for host 'db-1', not 'web-1'"):
        await enroll(fleet.base_url, "web-1", tmp_path / "b", for_db)
    with pytest.raises(EnrollmentRefused, match="no such enrollment token"):
        await enroll(fleet.base_url, "web-1", tmp_path / "c", "dre_guessed")
    # The token for db-1 was not spent by the refusal: db-1 may still use it.
    assert (await enroll(fleet.base_url, "db-1", tmp_path / "d", for_db)).host == "db-1"


async def test_without_a_token_a_host_waits_for_an_admin(fleet: Fleet, tmp_path: Path) -> None:
    assert fleet.http is not None
    shown: list[str] = []
    waiting = asyncio.create_task(
        enroll(fleet.base_url, "web-9", tmp_path / "w", poll=0.2, on_pending=shown.append)
    )
    await eventually(lambda: shown)
    pending = await fleet.get("/api/v1/enrollments?state=pending")
    assert [(k["host"], k["public_key"]) for k in pending] == [("web-9", shown[0])]
    operator = await fleet.client_as("olga")  # no admin: may not approve
    denied = await operator.post("/api/v1/enrollments/web-9/approve", json={"public_key": shown[0]})
    assert denied.status_code == 403
    approved = await fleet.http.post(
        "/api/v1/enrollments/web-9/approve", json={"public_key": shown[0]}
    )
    assert approved.status_code == 200, approved.text
    enrolled = await asyncio.wait_for(waiting, 10)
    assert enrolled.host == "web-9"

    rejected_key: list[str] = []
    refused = asyncio.create_task(
        enroll(fleet.base_url, "web-8", tmp_path / "r", poll=0.2, on_pending=rejected_key.append)
    )
    await eventually(lambda: rejected_key)
    response = await fleet.http.post(
        "/api/v1/enrollments/web-8/reject", json={"public_key": rejected_key[0]}
    )
    assert response.status_code == 204
    with pytest.raises(EnrollmentRefused, match="rejected"):
        await asyncio.wait_for(refused, 10)


async def test_renewal_needs_the_key_and_an_enrolled_host(fleet: Fleet, tmp_path: Path) -> None:
    assert fleet.http is not None
    enrolled = await enroll(fleet.base_url, "web-1", tmp_path / "h", await new_token(fleet))
    before = decode(enrolled.jwt_file.read_text())
    await asyncio.sleep(1.1)  # JWTs count in seconds
    expires = await renew(enrolled)
    after = decode(enrolled.jwt_file.read_text())
    assert after["iat"] > before["iat"] and after["sub"] == before["sub"]
    assert expires is not None and expires > datetime.now(UTC) + timedelta(days=6)

    # Another key cannot renew web-1's credentials, however it signs.
    thief = proof.signed_request(KeyPair.create(Kind.USER), "renew", "web-1")
    assert (await fleet.http.post("/api/v1/enroll/renew", json=thief)).status_code == 403
    # Nor can a copy of web-1's own request signed for another purpose or long ago.
    key = host_key(tmp_path / "h")
    stale = datetime.now(UTC) - timedelta(hours=1)
    for purpose, when in (("enroll", None), ("renew", stale)):
        body = proof.signed_request(key, purpose, "web-1", when)
        response = await fleet.http.post("/api/v1/enroll/renew", json=body)
        assert response.status_code == 403, response.text
        assert "proof of the key refused" in response.json()["detail"]

    revoked = await fleet.http.post("/api/v1/hosts/web-1/revoke")
    assert revoked.status_code == 200
    with pytest.raises(EnrollmentRefused, match="not enrolled"):
        await renew(Enrollment.load(tmp_path / "h"))


async def test_a_key_belongs_to_one_host_and_a_revoked_key_never_comes_back(
    fleet: Fleet, tmp_path: Path
) -> None:
    assert fleet.http is not None
    enrolled = await enroll(fleet.base_url, "web-1", tmp_path / "x", await new_token(fleet))
    key = KeyPair(enrolled.seed_file.read_bytes().strip())

    async def offer(host: str, **token: str) -> Any:
        body = proof.signed_request(key, "enroll", host) | token
        return await fleet.http.post("/api/v1/enroll", json=body)  # type: ignore[union-attr]

    other = await offer("web-2", token=await new_token(fleet))
    assert other.status_code == 409 and "key of host 'web-1'" in other.json()["detail"]
    assert (await fleet.http.post("/api/v1/hosts/web-1/revoke")).status_code == 200
    for token in ({"token": await new_token(fleet, host="web-1")}, {}):
        again = await offer("web-1", **token)
        assert again.status_code == 403 and "revoked" in again.json()["detail"], again.text
    # Enrolling again makes a new key, which works.
    renewed = await enroll(
        fleet.base_url, "web-1", tmp_path / "x", await new_token(fleet, host="web-1")
    )
    assert host_key(tmp_path / "x").public_key != key.public_key
    assert renewed.host == "web-1"


async def test_a_token_for_any_host_cannot_take_over_an_enrolled_one(
    fleet: Fleet, tmp_path: Path
) -> None:
    await enroll(fleet.base_url, "web-1", tmp_path / "a", await new_token(fleet))
    with pytest.raises(EnrollmentRefused, match="has had a key"):
        await enroll(fleet.base_url, "web-1", tmp_path / "b", await new_token(fleet))
    bound = await new_token(fleet, host="web-1")
    assert (await enroll(fleet.base_url, "web-1", tmp_path / "b", bound)).host == "web-1"


async def test_enrolling_again_with_a_new_key_revokes_the_old_one(
    fleet: Fleet, tmp_path: Path
) -> None:
    first = await enroll(fleet.base_url, "web-1", tmp_path / "old", await new_token(fleet))
    old_key = host_key(tmp_path / "old").public_key
    await enroll(fleet.base_url, "web-1", tmp_path / "new", await new_token(fleet, host="web-1"))
    keys = {k["public_key"]: k["state"] for k in await fleet.get("/api/v1/enrollments?host=web-1")}
    assert keys[old_key] == "revoked"
    assert sorted(keys.values()) == ["enrolled", "revoked"]
    refused = await _connects(first)
    assert "authorization violation" in refused
    # The new key's credentials work (a control: the refusal above is about the key).
    assert await _connects(Enrollment.load(tmp_path / "new")) == "connected"


async def _connects(enrollment: Enrollment) -> str:
    """ "connected", or why nats-server would not have it."""
    identity = BusIdentity.from_files(enrollment.seed_file, enrollment.jwt_file)
    assert enrollment.ca_file is not None
    try:
        client = await nats.connect(
            enrollment.nats_urls[0],
            tls=ssl.create_default_context(cafile=str(enrollment.ca_file)),
            user_jwt_cb=lambda: identity.user_jwt().encode(),
            signature_cb=lambda nonce: base64.b64encode(identity.key.sign(nonce.encode())),
            allow_reconnect=False,
            connect_timeout=5,
        )
    except nats.errors.Error as err:
        return str(err).lower()
    await client.close()
    return "connected"


async def test_bad_enrollment_requests_get_a_clear_4xx(fleet: Fleet) -> None:
    assert fleet.http is not None
    good = proof.signed_request(KeyPair.create(Kind.USER), "enroll", "web-1")
    account_key = KeyPair.create(Kind.ACCOUNT).public_key
    cases = [
        ({**good, "host": "no.dots"}, 422),
        ({**good, "public_key": "not-a-key"}, 422),
        ({**good, "public_key": account_key}, 400),
        ({**good, "signature": "AAAA"}, 403),
        ({**good, "token": "x" * 500}, 422),
    ]
    for body, code in cases:
        response = await fleet.http.post("/api/v1/enroll", json=body)
        assert response.status_code == code, (body, response.text)
        assert response.json()["detail"]


async def test_requests_without_a_token_are_bounded_per_address(fleet: Fleet) -> None:
    assert fleet.http is not None and fleet.server is not None
    limit = fleet.server.settings.enrollment.max_pending_per_source
    for n in range(limit):
        body = proof.signed_request(KeyPair.create(Kind.USER), "enroll", f"flood-{n}")
        assert (await fleet.http.post("/api/v1/enroll", json=body)).status_code == 202
    body = proof.signed_request(KeyPair.create(Kind.USER), "enroll", "one-more")
    body["signed_at"] = body["signed_at"].replace("+00:00", "Z")  # any form of the time will do
    refused = await fleet.http.post("/api/v1/enroll", json=body)
    assert refused.status_code == 429 and "127.0.0.1" in refused.json()["detail"]


async def test_an_agent_whose_credentials_lapsed_renews_them_and_connects(
    fleet: Fleet, tmp_path: Path
) -> None:
    agent = await fleet.start_agent("h1")
    assert fleet.nats.security is not None
    enrollment = agent.enrollment
    for component in list(fleet.running):  # the agent only (the server is the first)
        if component is not fleet.running[0]:
            await component.halt()
            fleet.running.remove(component)
    key = KeyPair(enrollment.seed_file.read_bytes().strip())
    lapsed = fleet.nats.security.authority.issue_user(
        "h1", key.public_key, permissions.agent("h1"), timedelta(seconds=-60)
    )
    enrollment.jwt_file.write_text(lapsed)
    again = await fleet.start_agent("h1", enroll=False)  # renews before it can connect
    assert again.bus.is_connected
    assert decode(enrollment.jwt_file.read_text())["exp"] > datetime.now(UTC).timestamp()


async def test_enrolling_again_in_vain_leaves_the_working_key_and_credentials(
    fleet: Fleet, tmp_path: Path
) -> None:
    token = await new_token(fleet)
    enrolled = await enroll(fleet.base_url, "web-1", tmp_path / "h", token)
    key, credentials = enrolled.seed_file.read_bytes(), enrolled.jwt_file.read_bytes()
    for server, again in ((fleet.base_url, token), ("http://127.0.0.1:9", "dre_x")):
        with pytest.raises(EnrollmentRefused):  # spent, and no server at all
            await enroll(server, "web-1", tmp_path / "h", again)
        assert enrolled.seed_file.read_bytes() == key
        assert enrolled.jwt_file.read_bytes() == credentials
    assert await _connects(Enrollment.load(tmp_path / "h")) == "connected"


async def test_a_refused_token_makes_nothing_on_the_bus(fleet: Fleet) -> None:
    assert fleet.http is not None and fleet.server is not None
    body = proof.signed_request(KeyPair.create(Kind.USER), "enroll", "junk-1")
    response = await fleet.http.post("/api/v1/enroll", json=body | {"token": "dre_bogus"})
    assert response.status_code == 403
    with pytest.raises(nats.js.errors.NotFoundError):
        await fleet.server.bus.js.consumer_info("DROVER_ACTIONS", "agent-junk-1")


async def test_a_host_that_had_a_key_needs_a_token_made_for_it(
    fleet: Fleet, tmp_path: Path
) -> None:
    assert fleet.http is not None
    await enroll(fleet.base_url, "web-1", tmp_path / "h", await new_token(fleet))
    assert (await fleet.http.post("/api/v1/hosts/web-1/revoke")).status_code == 200
    with pytest.raises(EnrollmentRefused, match="has had a key"):
        await enroll(fleet.base_url, "web-1", tmp_path / "h", await new_token(fleet))
    bound = await new_token(fleet, host="web-1")
    assert (await enroll(fleet.base_url, "web-1", tmp_path / "h", bound)).host == "web-1"
