"""Commands on the wire: requests that old agents still read (or refuse, never misread), output
chunks that carry any bytes, and names that keep every host to its own subject."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import pytest
from pydantic import AwareDatetime

from drover.bus import subjects
from drover.bus.errors import MalformedMessage
from drover.bus.messages import (
    MAX_CHUNK,
    ActionRequest,
    ActionResult,
    CommandRun,
    Message,
    OutputChunk,
    decode,
    encode,
)
from drover.model.action import ActionKind
from drover.model.names import HostId, Name

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class OldActionRequest(Message):
    """ActionRequest as agents before commands read it."""

    v: Literal[1] = 1
    action_id: str
    host: HostId
    kind: Literal["start", "stop", "restart"]
    application: Name
    services: list[Name]
    requested_by: str
    created_at: AwareDatetime
    deadline: AwareDatetime


def request(kind: ActionKind, command: CommandRun | None = None) -> ActionRequest:
    return ActionRequest(
        action_id="a1",
        host="h1",
        kind=kind,
        application="shop",
        services=[],
        requested_by="alice",
        created_at=NOW,
        deadline=NOW,
        command=command,
    )


RUN = CommandRun(
    name="flush",
    argv=["flush", "--region", "eu"],
    params={"region": "eu"},
    timeout_s=60,
    output_limit=1024,
)


def test_an_old_agent_reads_a_restart_as_before_and_refuses_a_command_as_malformed() -> None:
    old = decode(OldActionRequest, "drover.action.h1", encode(request(ActionKind.RESTART)))
    assert old.kind == "restart"
    with pytest.raises(MalformedMessage, match="kind"):
        decode(OldActionRequest, "drover.action.h1", encode(request(ActionKind.COMMAND, RUN)))


def test_a_request_of_an_old_server_has_no_command_and_a_result_no_chunks() -> None:
    old = OldActionRequest(
        action_id="a1",
        host="h1",
        kind="stop",
        application="shop",
        services=["web"],
        requested_by="bob",
        created_at=NOW,
        deadline=NOW,
    )
    assert decode(ActionRequest, "s", encode(old)).command is None
    result = (
        b'{"v":1,"action_id":"a1","host":"h1","outcome":"succeeded",'
        b'"finished_at":"2026-11-23T12:00:00Z"}'
    )
    assert decode(ActionResult, "s", result).output_chunks == 0


def test_a_command_request_survives_encoding() -> None:
    sent = request(ActionKind.COMMAND, RUN)
    assert decode(ActionRequest, "s", encode(sent)) == sent


def test_a_chunk_carries_any_bytes_and_no_more_than_its_maximum() -> None:
    chunk = OutputChunk(action_id="a1", host="h1", seq=1, data=bytes(range(256)))
    assert decode(OutputChunk, "s", encode(chunk)) == chunk
    too_big = OutputChunk.model_construct(
        action_id="a1", host="h1", seq=1, data=b"x" * (MAX_CHUNK + 1)
    )
    with pytest.raises(MalformedMessage, match="data"):
        decode(OutputChunk, "s", encode(too_big))
    with pytest.raises(MalformedMessage, match="seq"):
        decode(OutputChunk, "s", b'{"action_id":"a1","host":"h1","seq":0,"data":""}')


def test_output_goes_on_the_hosts_own_subject() -> None:
    assert subjects.output_subject("web-01").split(".") == ["drover", "output", "web-01"]
