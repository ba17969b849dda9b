from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drover.bus import subjects
from drover.bus.errors import MalformedMessage
from drover.bus.messages import ActionRequest, HostRecord, ServiceState, decode, encode, tail
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus

token = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)


@given(token, token, token)
def test_a_service_key_parses_back_into_its_parts(host: str, app: str, svc: str) -> None:
    parsed = subjects.parse_state_key(subjects.service_key(host, app, svc))
    assert parsed == subjects.StateKey(host, app, svc)


@given(token)
def test_a_host_key_parses_back_into_its_host(host: str) -> None:
    parsed = subjects.parse_state_key(subjects.host_key(host))
    assert parsed is not None and parsed.is_host and parsed.host == host


@pytest.mark.parametrize(
    "key", ["", "host", "host.", "svc.a.b", "svc.a..c", "other.a", "svc.a.b.c.d"]
)
def test_keys_drover_did_not_lay_out_are_not_parsed(key: str) -> None:
    assert subjects.parse_state_key(key) is None


def test_the_host_id_is_one_whole_token_of_every_per_host_subject() -> None:
    host = "web-01"
    for subject in (
        subjects.action_subject(host),
        subjects.result_subject(host),
        subjects.event_subject(host, "shop", "web"),
        subjects.service_key(host, "shop", "web"),
        subjects.host_key(host),
    ):
        assert host in subject.split(".")


def test_a_message_survives_encoding() -> None:
    state = ServiceState(
        host="h1",
        application="shop",
        service="web",
        provider="process",
        status=ServiceStatus.RUNNING,
        since=datetime(2026, 1, 1, tzinfo=UTC),
        pid=42,
    )
    assert decode(ServiceState, "s", encode(state)) == state


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "Invalid JSON"),
        (b"{}", "action_id: Field required"),
        (b'{"v": 2}', "v: Input should be 1"),
    ],
)
def test_a_malformed_payload_raises_with_the_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        decode(ActionRequest, "drover.action.h1", payload)
    assert caught.value.subject == "drover.action.h1"
    assert reason in caught.value.reason


def test_an_action_request_rejects_a_host_id_with_a_dot() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="host"):
        ActionRequest(
            action_id="a",
            host="a.b",
            kind=ActionKind.RESTART,
            application="x",
            services=["y"],
            requested_by="me",
            created_at=now,
            deadline=now,
        )


def test_long_output_keeps_its_tail() -> None:
    text = "x" * 10_000 + "END"
    assert tail(text).endswith("END") and len(tail(text)) <= 4097


def test_a_time_without_a_zone_is_malformed() -> None:
    naive = (
        b'{"v":1,"host":"h1","hostname":"h","agent_version":"1","started_at":"2024-01-01T00:00:00",'
        b'"heartbeat_at":"2024-01-01T00:00:00","heartbeat_interval":5}'
    )
    with pytest.raises(MalformedMessage, match="timezone"):
        decode(HostRecord, "host.h1", naive)
