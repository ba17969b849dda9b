"""How the CLI follows a command's output: lines after their host's name, a dropped connection
resumed from the last event seen, and the exit code from how each host ended."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from drover.cli import sse
from drover.cli.client import ApiClient, CliError
from drover.cli.jobs import Lines, follow, parse_params


def event(kind: str, data: dict[str, object], event_id: int | None = None) -> str:
    lines = [f"event: {kind}", f"data: {json.dumps(data)}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    return "\n".join(lines) + "\n\n"


FIRST = event("output", {"host": "web-01", "seq": 1, "text": "hel"}, 1) + ": keep-alive\n\n"
REST = (
    event("output", {"host": "web-02", "seq": 1, "text": "two\n"}, 2)
    + event("output", {"host": "web-01", "seq": 2, "text": "lo\nbye"}, 3)
    + event("end", {"host": "web-01", "outcome": "succeeded", "exit_code": 0}, 4)
    + event("end", {"host": "web-02", "outcome": "failed", "exit_code": 3}, 5)
    + event("done", {"hosts": 2})
)


def test_a_dropped_stream_is_resumed_after_the_last_event_and_nothing_is_printed_twice() -> None:
    asked: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Last-Event-ID"))
        if len(asked) == 1:
            return httpx.Response(200, content=_cut_after(FIRST))
        return httpx.Response(200, text=REST)

    client = ApiClient("http://drover.test", token="t")
    client._http = httpx.Client(
        base_url="http://drover.test", transport=httpx.MockTransport(answer)
    )
    out = io.StringIO()
    ends = follow(client, "a1", None, Lines(out, ["web-01", "web-02"]), sleep=lambda _: None)

    assert asked == [None, "1"]
    assert out.getvalue() == "web-02 | two\nweb-01 | hello\nweb-01 | bye\n"
    assert {h: e["outcome"] for h, e in ends.items()} == {
        "web-01": "succeeded",
        "web-02": "failed",
    }


def _cut_after(text: str) -> httpx.SyncByteStream:
    """A body that breaks off after `text`, as a connection that drops."""

    class Broken(httpx.SyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield text.encode()
            raise httpx.ReadError("connection reset")

    return Broken()


def test_an_error_before_the_stream_is_the_servers_reason() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"detail": "olga may not read on shop: needs viewer"})

    client = ApiClient("http://drover.test", token="t")
    client._http = httpx.Client(
        base_url="http://drover.test", transport=httpx.MockTransport(answer)
    )
    with pytest.raises(CliError) as refused:
        follow(client, "a1", None, Lines(io.StringIO(), []), sleep=lambda _: None)
    assert (refused.value.message, refused.value.exit_code) == (
        "olga may not read on shop: needs viewer",
        2,
    )


def test_params_are_name_value_pairs() -> None:
    assert parse_params(["region=eu", "note=a=b", "empty="]) == {
        "region": "eu",
        "note": "a=b",
        "empty": "",
    }
    for bad in (["region"], ["=eu"], ["a=1", "a=2"]):
        with pytest.raises(CliError) as refused:
            parse_params(bad)
        assert refused.value.exit_code == 2


def test_server_sent_events_are_read_as_the_standard_says() -> None:
    lines = ["event: output", "data: a", "data: b", "id: 7", "", ": comment", "data: x", ""]
    assert list(sse.events(lines)) == [
        sse.Event("output", "a\nb", "7"),
        sse.Event("message", "x", "7"),
    ]
