"""Commands run on real agents, their output live over SSE and stored whole, against a real
nats-server: what the process wrote is what the API gives back, byte for byte."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from drover.bus import subjects
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import ActionRequest, CommandRun, OutputChunk, encode
from drover.cli import sse
from drover.model.action import ActionKind
from tests.busauth import signed, superuser_client
from tests.conftest import eventually
from tests.harness import Fleet, fleet_of

PY = [sys.executable, "-S"]

# Prints, waits for a file the test creates, prints again: output that must arrive while the
# command is still running.
TALK = """
import os, sys, time
print("before", flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.02)
print("after", flush=True)
"""
# Several MiB, not all of them UTF-8: the bytes big_output() makes.
BIG = """
import sys
sys.path.insert(0, sys.argv[2])
from output_bytes import big_output
out = sys.stdout.buffer
data = big_output(int(sys.argv[1]))
for start in range(0, len(data), 100_000):
    out.write(data[start:start + 100_000])
    out.flush()
"""
OUTPUT_BYTES = """
def big_output(mib):
    line = "héllo wörld ✓ — ".encode() * 4 + bytes(range(256)) + b"\\xff\\xfe\\xc3\\n"
    data = line * (mib * 1024 * 1024 // len(line) + 1)
    return data[: mib * 1024 * 1024]
"""
# Starts a child in its own process group... no: in the same group, then sleeps past its
# timeout. Both pids go to a file, so the test can see that neither survives.
SLEEPY = """
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "300"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child.pid}\\n")
print("sleeping", flush=True)
time.sleep(300)
"""
LINES = """
import sys, time
for n in range(int(sys.argv[1])):
    print(f"line {n}", flush=True)
    time.sleep(0.25)
"""


def config(tmp: Path) -> dict[str, str]:
    scripts = tmp / "scripts"
    for name, text in (
        ("talk.py", TALK),
        ("big.py", BIG),
        ("output_bytes.py", OUTPUT_BYTES),
        ("sleepy.py", SLEEPY),
        ("lines.py", LINES),
    ):
        scripts.mkdir(parents=True, exist_ok=True)
        (scripts / name).write_text(textwrap.dedent(text))

    def argv(*items: str) -> str:
        return json.dumps(list(items))

    journal = tmp / "journal"
    return {
        "groups.yaml": "groups:\n  all: {hosts: ['*']}\n",
        "hosts.yaml": "hosts:\n  h1: {}\n  h2: {}\n",
        "jobs.yaml": textwrap.dedent(
            f"""\
            applications:
              jobs:
                groups: [all]
                commands:
                  talk:
                    argv: {argv(*PY, str(scripts / "talk.py"), "{gate}")}
                    params: {{gate: {{type: string, required: true}}}}
                  big:
                    argv: {argv(*PY, str(scripts / "big.py"), "{mib}", str(scripts))}
                    params: {{mib: {{type: integer, minimum: 1, maximum: 64, default: 1}}}}
                  sleepy:
                    argv: {argv(*PY, str(scripts / "sleepy.py"), "{pids}")}
                    params: {{pids: {{type: string, required: true}}}}
                    timeout: 1
                  lines:
                    argv: {argv(*PY, str(scripts / "lines.py"), "{count}")}
                    params: {{count: {{type: integer, default: 5}}}}
                  whoami:
                    argv: [sh, -c, 'echo "$(id -un) $(id -gn) $(id -G) $HOME $DROVER_PARAM_SAY"']
                    params: {{say: {{type: string, default: hi}}}}
                    run_as: nobody
                  once:
                    argv: [sh, -c, 'echo ran >> {journal}; echo once']
                  missing:
                    argv: [/nonexistent/program, --flag]
                  hang:
                    argv: [sh, -c, 'echo $$ > {tmp / "hang.pid"}; echo started; exec sleep 300']
                  fail:
                    argv: [sh, -c, 'echo oops; exit 3']
                  flush-cache:
                    argv: [echo, --region, "{{region}}", --count, "{{count}}", "{{{{{{mode}}}}}}"]
                    params:
                      region: {{type: string, pattern: "^[a-z]+$", required: true}}
                      count: {{type: integer, minimum: 1, maximum: 10, default: 1}}
                      dry: {{type: boolean, default: false}}
                      mode: {{type: choice, choices: [soft, hard], default: soft}}
            """
        ),
    }


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats, tmp_path: Path, database_url: str
) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, config(tmp_path)) as running:
        await running.start_server(database_url=database_url)
        yield running


@pytest.fixture
async def sqlite_fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, config(tmp_path)) as running:
        await running.start_server()
        yield running


async def submit(
    fleet: Fleet, command: str, hosts: list[str] | None = None, **params: Any
) -> dict[str, Any]:
    """Run `command` on `hosts` (by default h1 alone: h2 is named in the config too)."""
    assert fleet.http is not None
    body = {
        "kind": "command",
        "application": "jobs",
        "command": command,
        "params": params,
        "hosts": hosts or ["h1"],
    }
    created = await fleet.http.post("/api/v1/actions", json=body)
    assert created.status_code == 202, created.text
    found: dict[str, Any] = created.json()
    return found


async def events(
    fleet: Fleet, action_id: str, last_id: str | None = None, host: str | None = None
) -> AsyncIterator[sse.Event]:
    assert fleet.http is not None
    headers = {"Last-Event-ID": last_id} if last_id else {}
    params = {"host": host} if host else {}
    async with fleet.http.stream(
        "GET",
        f"/api/v1/actions/{action_id}/output",
        headers=headers,
        params=params,
        timeout=httpx.Timeout(10, read=60),
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line async for line in _lines(response)]
        for event in sse.events(lines):
            yield event


async def _lines(response: httpx.Response) -> AsyncIterator[str]:
    async for line in response.aiter_lines():
        yield line


async def all_events(fleet: Fleet, action_id: str, **kwargs: Any) -> list[sse.Event]:
    return [e async for e in events(fleet, action_id, **kwargs)]


async def finished(fleet: Fleet, action_id: str) -> dict[str, Any]:
    final: dict[str, Any] = {}

    async def done() -> bool:
        final.update(await fleet.get(f"/api/v1/actions/{action_id}"))
        return bool(final["state"] != "running")

    await eventually(done, timeout=40)
    return final


def text_of(found: list[sse.Event], host: str) -> str:
    return "".join(
        json.loads(e.data)["text"]
        for e in found
        if e.event == "output" and json.loads(e.data)["host"] == host
    )


async def test_output_of_several_hosts_arrives_live_before_the_command_ends(
    fleet: Fleet, tmp_path: Path
) -> None:
    await asyncio.gather(fleet.start_agent("h1"), fleet.start_agent("h2"))
    gate = tmp_path / "gate"
    action = await submit(fleet, "talk", ["h1", "h2"], gate=str(gate))
    assert action["command"] == {
        "name": "talk",
        "params": {"gate": str(gate)},
        "argv": [*PY, str(tmp_path / "scripts" / "talk.py"), str(gate)],
        "run_as": None,
        "timeout_s": 300.0,
    }
    seen: list[sse.Event] = []
    assert fleet.http is not None
    async with fleet.http.stream(
        "GET", f"/api/v1/actions/{action['id']}/output", timeout=httpx.Timeout(10, read=60)
    ) as response:
        lines = response.aiter_lines()
        buffer: list[str] = []

        async def next_event() -> sse.Event:
            while True:
                line = await anext(lines)
                buffer.append(line)
                if line == "" and (parsed := list(sse.events(buffer))):
                    buffer.clear()
                    return parsed[0]

        while {json.loads(e.data)["host"] for e in seen if "before" in e.data} != {"h1", "h2"}:
            seen.append(await asyncio.wait_for(next_event(), 20))
        # Both hosts said "before" and wait for the gate: the command is still running.
        running = await fleet.get(f"/api/v1/actions/{action['id']}")
        assert {h["outcome"] for h in running["hosts"]} == {"dispatched"}
        gate.touch()
        while not seen or seen[-1].event != "done":
            seen.append(await asyncio.wait_for(next_event(), 20))

    assert [e.event for e in seen].count("end") == 2
    for host in ("h1", "h2"):
        assert text_of(seen, host) == "before\nafter\n"
    ends = {json.loads(e.data)["host"]: json.loads(e.data) for e in seen if e.event == "end"}
    assert ends == {
        h: {"host": h, "outcome": "succeeded", "exit_code": 0, "chunks": 2, "missing": 0}
        for h in ("h1", "h2")
    }
    ids = [int(e.id) for e in seen if e.id is not None]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    final = await finished(fleet, action["id"])
    assert [(h["host"], h["outcome"], h["output_chunks"]) for h in final["hosts"]] == [
        ("h1", "succeeded", 2),
        ("h2", "succeeded", 2),
    ]
    assert seen[-1] == sse.Event("done", json.dumps({"hosts": 2}), None)


async def test_a_reader_that_comes_back_with_last_event_id_misses_nothing_and_sees_nothing_twice(
    sqlite_fleet: Fleet,
) -> None:
    fleet = sqlite_fleet
    await asyncio.gather(fleet.start_agent("h1"), fleet.start_agent("h2"))
    action = await submit(fleet, "lines", ["h1", "h2"], count=6)
    whole = await all_events(fleet, action["id"])
    assert text_of(whole, "h1") == "".join(f"line {n}\n" for n in range(6))
    with_ids = [e for e in whole if e.event in ("output", "end")]
    assert len(with_ids) >= 6  # several chunks per host, interleaved

    for cut in range(len(with_ids)):
        rest = await all_events(fleet, action["id"], last_id=with_ids[cut].id)
        assert shown(rest) == shown(whole[cut + 1 :])
    only_h2 = await all_events(fleet, action["id"], host="h2")
    assert only_h2[:-1] == [e for e in whole[:-1] if json.loads(e.data)["host"] == "h2"]
    assert json.loads(only_h2[-1].data) == {"hosts": 1}


def shown(found: list[sse.Event]) -> list[tuple[str, str, str | None]]:
    """Events as a reader sees them: `done` has no id of its own (the parser keeps the last)."""
    return [(e.event, e.data, None if e.event == "done" else e.id) for e in found]


async def test_the_whole_output_is_stored_as_the_process_wrote_it_even_when_not_utf8(
    fleet: Fleet, tmp_path: Path
) -> None:
    await fleet.start_agent("h1")
    action = await submit(fleet, "big", mib=5)
    final = await finished(fleet, action["id"])
    assert final["state"] == "succeeded", final
    sys.path.insert(0, str(tmp_path / "scripts"))
    try:
        from output_bytes import big_output  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    expected: bytes = big_output(5)

    async def whole() -> bytes:
        assert fleet.http is not None
        response = await fleet.http.get(f"/api/v1/actions/{action['id']}/hosts/h1/output")
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        return response.content

    await eventually(lambda: _length_is(whole, len(expected)), timeout=30)
    assert await whole() == expected
    [host] = final["hosts"]
    assert host["output_chunks"] >= 5 * 1024 // 16  # 16 KiB chunks at most
    # The live feed shows the same, as text: valid UTF-8 intact, the rest replaced.
    live = await all_events(fleet, action["id"])
    assert text_of(live, "h1") == expected.decode("utf-8", errors="replace")


async def _length_is(get: Any, size: int) -> bool:
    return len(await get()) == size


async def test_a_timeout_stops_the_whole_process_group(sqlite_fleet: Fleet, tmp_path: Path) -> None:
    fleet = sqlite_fleet
    await fleet.start_agent("h1")
    pids_file = tmp_path / "pids"
    action = await submit(fleet, "sleepy", pids=str(pids_file))
    final = await finished(fleet, action["id"])
    [host] = final["hosts"]
    assert (host["outcome"], host["exit_code"]) == ("failed", 143)
    assert "sleeping\n" in host["output"]
    assert "timed out after 1s: its process group was stopped" in host["output"]
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 2
    await eventually(lambda: not any(_alive(p) for p in pids), timeout=10)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped already


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user takes root")
async def test_run_as_runs_as_that_user_with_its_own_group_and_a_clean_environment(
    sqlite_fleet: Fleet,
) -> None:
    fleet = sqlite_fleet
    await fleet.start_agent("h1")
    action = await submit(fleet, "whoami", say="hello")
    final = await finished(fleet, action["id"])
    [host] = final["hosts"]
    assert host["outcome"] == "succeeded", host
    assert host["output"] == "nobody nogroup 65534 /nonexistent hello\n"


async def test_a_program_that_does_not_exist_fails_with_the_reason(sqlite_fleet: Fleet) -> None:
    fleet = sqlite_fleet
    await fleet.start_agent("h1")
    final = await finished(fleet, (await submit(fleet, "missing"))["id"])
    [host] = final["hosts"]
    assert (host["outcome"], host["exit_code"]) == ("failed", None)
    assert host["output"] == "[cannot run /nonexistent/program: no such file or directory]"
    end = (await all_events(fleet, final["id"]))[-2]
    assert json.loads(end.data) == {
        "host": "h1",
        "outcome": "failed",
        "exit_code": None,
        "chunks": 0,
        "missing": 0,
    }


async def test_a_failing_command_reports_its_exit_code(sqlite_fleet: Fleet) -> None:
    fleet = sqlite_fleet
    await fleet.start_agent("h1")
    final = await finished(fleet, (await submit(fleet, "fail"))["id"])
    assert [(h["outcome"], h["exit_code"], h["output"]) for h in final["hosts"]] == [
        ("failed", 3, "oops\n")
    ]


async def test_a_redelivered_command_is_answered_from_the_ledger_not_run_again(
    sqlite_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = sqlite_fleet
    agent = await fleet.start_agent("h1")
    final = await finished(fleet, (await submit(fleet, "once"))["id"])
    assert final["state"] == "succeeded"
    now = datetime.now(UTC)
    replay = ActionRequest(
        action_id=final["id"],
        host="h1",
        kind=ActionKind.COMMAND,
        application="jobs",
        services=[],
        requested_by="test",
        created_at=now,
        deadline=now + timedelta(minutes=5),
        command=CommandRun(
            name="once", argv=final["command"]["argv"], timeout_s=10, output_limit=1000
        ),
    )
    nc = await superuser_client(fleet.nats)
    try:
        js = nc.jetstream()
        payload = encode(replay)
        for _ in range(3):  # as JetStream would redeliver it (no de-duplication id)
            await js.publish(
                subjects.action_subject("h1"), payload, headers=signed(fleet.nats, payload)
            )

        async def consumed() -> bool:
            info = await js.stream_info(subjects.ACTIONS_STREAM)
            return bool(info.state.messages == 0)

        await eventually(consumed)
    finally:
        await nc.close()
    await asyncio.sleep(1)
    assert (tmp_path / "journal").read_text() == "ran\n"
    assert agent.executor.executions == 1
    again = await fleet.get(f"/api/v1/actions/{final['id']}")
    assert again["hosts"] == final["hosts"]


async def test_params_are_checked_at_submit_with_the_parameter_and_the_reason(
    sqlite_fleet: Fleet,
) -> None:
    fleet = sqlite_fleet
    assert fleet.http is not None

    async def refused(status: int, **body: Any) -> str:
        request = {"kind": "command", "application": "jobs", **body}
        answer = await fleet.http.post("/api/v1/actions", json=request)  # type: ignore[union-attr]
        assert answer.status_code == status, answer.text
        detail: str = answer.json()["detail"]
        return detail

    flush = {"command": "flush-cache"}
    assert await refused(422, **flush, params={}) == "params.region: required, and not given"
    assert await refused(422, **flush, params={"region": "eu", "colour": "red"}) == (
        "params.colour: unknown parameter; this command takes count, dry, mode, region"
    )
    assert await refused(422, **flush, params={"region": "EU"}) == (
        "params.region: 'EU' does not match ^[a-z]+$"
    )
    assert await refused(422, **flush, params={"region": "eu", "count": 11}) == (
        "params.count: must be at most 10; got 11"
    )
    assert await refused(422, **flush, params={"region": "eu", "count": "many"}) == (
        "params.count: must be an integer; got 'many'"
    )
    assert await refused(422, **flush, params={"region": "eu", "dry": "maybe"}) == (
        "params.dry: must be true or false; got 'maybe'"
    )
    assert await refused(422, **flush, params={"region": "eu", "mode": "firm"}) == (
        "params.mode: must be one of soft, hard; got 'firm'"
    )
    assert await refused(404, command="nope") == (
        "application 'jobs' has no command 'nope' (it has: big, fail, flush-cache, hang, "
        "lines, missing, once, sleepy, talk, whoami)"
    )
    assert await refused(422) == (
        "kind 'command' needs 'command': which of the application's commands"
    )
    assert await refused(422, **flush, service="web") == (
        "a command runs once on each host, not on a service: leave out 'service'"
    )
    answer = await fleet.http.post(
        "/api/v1/actions", json={"kind": "restart", "application": "jobs", "command": "x"}
    )
    assert answer.json()["detail"] == "'command' and 'params' go with kind 'command' only"
    assert await fleet.get("/api/v1/actions") == []  # nothing refused was recorded

    accepted = await submit(fleet, "flush-cache", ["h1", "h2"], region="eu", count="3", dry="yes")
    assert accepted["command"]["params"] == {
        "count": 3,
        "dry": True,
        "mode": "soft",
        "region": "eu",
    }
    assert accepted["command"]["argv"] == ["echo", "--region", "eu", "--count", "3", "{soft}"]
    assert [h["host"] for h in accepted["hosts"]] == ["h1", "h2"]


async def test_output_of_an_action_that_is_no_command_or_of_a_stranger_is_refused(
    sqlite_fleet: Fleet,
) -> None:
    fleet = sqlite_fleet
    assert fleet.http is not None
    missing = await fleet.http.get("/api/v1/actions/nope/output")
    assert (missing.status_code, missing.json()) == (404, {"detail": "no action 'nope'"})
    action = await submit(fleet, "fail")
    stranger = await fleet.http.get(f"/api/v1/actions/{action['id']}/output?host=h9")
    assert stranger.json() == {"detail": f"action {action['id']} has no host 'h9'"}
    bad_id = await fleet.http.get(
        f"/api/v1/actions/{action['id']}/output", headers={"Last-Event-ID": "x"}
    )
    assert bad_id.status_code == 422
    whole = await fleet.http.get(f"/api/v1/actions/{action['id']}/hosts/h9/output")
    assert whole.status_code == 404


async def test_a_command_cut_short_by_the_agent_stopping_is_killed_and_reported_interrupted(
    sqlite_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = sqlite_fleet
    await fleet.start_agent("h1")
    agent_run = fleet.running[-1]
    action = await submit(fleet, "hang")
    pidfile = tmp_path / "hang.pid"
    await eventually(lambda: pidfile.exists() and pidfile.read_text().strip())
    pid = int(pidfile.read_text())

    await agent_run.halt()  # drains for 5 s, then gives up on the command and kills it
    await eventually(lambda: not _alive(pid), timeout=5)
    await fleet.start_agent("h1")
    final = await finished(fleet, action["id"])
    assert [(h["outcome"], h["output"]) for h in final["hosts"]] == [
        ("interrupted", "agent stopped mid-run")
    ]
    # What it printed before is kept, and the stream ends.
    found = await all_events(fleet, action["id"])
    assert text_of(found, "h1") == "started\n"
    assert json.loads(found[-2].data)["outcome"] == "interrupted"


async def test_output_on_another_hosts_subject_or_malformed_is_dropped_and_counted(
    sqlite_fleet: Fleet,
) -> None:
    fleet = sqlite_fleet
    assert fleet.server is not None
    action = await submit(fleet, "fail", ["h1", "h2"])
    forged = OutputChunk(action_id=action["id"], host="h2", seq=1, data=b"not mine")
    unknown = OutputChunk(action_id="no-such-action", host="h1", seq=1, data=b"?")
    nc = await superuser_client(fleet.nats)
    try:
        js = nc.jetstream()
        await js.publish(subjects.output_subject("h1"), encode(forged))  # h1 writing for h2
        await js.publish(subjects.output_subject("h1"), b"{not json")
        await js.publish(subjects.output_subject("h1"), encode(unknown))
    finally:
        await nc.close()
    counters = fleet.server.counters
    await eventually(lambda: counters.snapshot().get("server.malformed_messages", 0) >= 3)
    assert await all_stored(fleet, action["id"]) == []


async def all_stored(fleet: Fleet, action_id: str) -> list[bytes]:
    assert fleet.http is not None
    found = []
    for host in ("h1", "h2"):
        response = await fleet.http.get(f"/api/v1/actions/{action_id}/hosts/{host}/output")
        if response.content:
            found.append(response.content)
    return found


async def test_an_approval_rule_names_a_command_as_command_colon_its_name(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    files = config(tmp_path) | {
        "approvals.yaml": "approvals:\n  - {kinds: ['command:fail'], required: 1}\n"
    }
    async with fleet_of(nats_server, tmp_path, files) as fleet:
        await fleet.start_server()
        held = await submit(fleet, "fail")
        assert (held["state"], held["approval"]["kind"]) == ("pending-approval", "command:fail")
        free = await submit(fleet, "once")
        assert free["approval"] is None
