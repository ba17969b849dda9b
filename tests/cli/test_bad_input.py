"""Every mistake on the command line is one `error: …` line and an exit code, never a traceback.

Exit 2 means the input was wrong; exit 1 that something else failed (a port that is taken, a
server that answers nonsense). Each case runs the real `drover` binary and fails before anything
starts, so none of these needs a nats-server.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DROVER = str(Path(sys.executable).parent / "drover")
EXAMPLE = Path(__file__).parents[2] / "examples" / "config"
ASYNC_DATABASES = "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DATABASE"
NATS_SCHEMES = "nats://, tls://, ws:// or wss://"


def drover(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # In a folder of its own, so that defaults such as `--data-dir .drover` land there.
    return subprocess.run(
        [DROVER, *args], capture_output=True, text=True, timeout=30, check=False, cwd=cwd
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, msg: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert (result.returncode, result.stderr) == (code, f"error: {msg}\n")


BAD_INPUT = {
    "log level of dev": (
        ["dev", "--log-level", "verbose", "--config", str(EXAMPLE)],
        "--log-level 'verbose': expected one of DEBUG, INFO, WARNING, ERROR",
    ),
    "log level of server": (
        ["server", "--log-level", "loud", "--config", str(EXAMPLE)],
        "--log-level 'loud': expected one of DEBUG, INFO, WARNING, ERROR",
    ),
    "log level of agent": (
        ["agent", "--log-level", "trace", "--data-dir", "state"],
        "--log-level 'trace': expected one of DEBUG, INFO, WARNING, ERROR",
    ),
    "ref on a plain folder, server": (
        ["server", "--config", str(EXAMPLE), "--ref", "X"],
        f"folder {EXAMPLE}: ref 'X' given, but this is not a git repository",
    ),
    "ref on a plain folder, dev": (
        ["dev", "--config", str(EXAMPLE), "--ref", "main"],
        f"folder {EXAMPLE}: ref 'main' given, but this is not a git repository",
    ),
    "sync database driver": (
        ["server", "--config", str(EXAMPLE), "--database", "sqlite:///x.db"],
        f"--database 'sqlite:///x.db': 'sqlite' is not an async driver; expected {ASYNC_DATABASES}",
    ),
    "database URL that does not parse": (
        ["server", "--config", str(EXAMPLE), "--database", "drover.db"],
        f"--database 'drover.db': not a database URL; expected {ASYNC_DATABASES}",
    ),
    "NATS URL without a scheme": (
        ["server", "--config", str(EXAMPLE), "--nats", "localhost:4222"],
        f"--nats 'localhost:4222': expected a {NATS_SCHEMES} URL with a host, "
        "e.g. nats://127.0.0.1:4222",
    ),
    "NATS URL of another protocol": (
        ["agent", "--nats", "http://x", "--data-dir", "state"],
        f"--nats 'http://x': expected a {NATS_SCHEMES} URL with a host, e.g. nats://127.0.0.1:4222",
    ),
    "server URL that does not parse": (
        ["status", "--server", "http://[::1"],
        "--server 'http://[::1': invalid URL; expected e.g. http://127.0.0.1:8080 "
        "(Invalid port: ':1')",
    ),
    "server URL without a scheme": (
        ["hosts", "--server", "localhost:8080"],
        "--server 'localhost:8080': invalid URL; expected e.g. http://127.0.0.1:8080",
    ),
    "server without its bus authority": (
        ["server", "--config", str(EXAMPLE), "--bus-authority", "nokeys"],
        "--bus-authority: nokeys/operator.nk: missing; make the bus authority with "
        "`drover bus init --dir nokeys`",
    ),
    "enrollment token of no duration": (
        ["hosts", "token", "create", "--expires", "soon"],
        "--expires 'soon': expected a duration like 90s, 30m, 4h or 2d",
    ),
    "action on an empty service": (
        ["action", "stop", "shop/"],
        "'shop/': expected APP or APP/SERVICE",
    ),
    "action on an empty application": (
        ["action", "restart", "/web"],
        "'/web': expected APP or APP/SERVICE",
    ),
    "action on a path": (
        ["action", "start", "shop/web/x"],
        "'shop/web/x': expected APP or APP/SERVICE",
    ),
    "outpost without its hub and certificate": (
        ["outpost"],
        "drover outpost needs --hub, --tls-cert, --tls-key, --tls-ca",
    ),
    "outpost with a certificate that is not there": (
        [
            *("outpost", "--hub", "tls://hub:7422", "--tls-cert", "cert.pem"),
            *("--tls-key", "key.pem", "--tls-ca", "ca.pem"),
        ],
        "--tls-cert cert.pem: no such file",
    ),
    "outpost named with a space": (
        ["outpost", "init", "far away", "--out", "bundle"],
        "outpost name 'far away': expected letters, digits, '-' and '_' (it names subjects)",
    ),
    "outpost bundle without a bus authority": (
        ["outpost", "init", "far", "--out", "bundle", "--bus-authority", "none"],
        "none/operator.nk: missing; make the bus authority with `drover bus init --dir none`",
    ),
}


@pytest.mark.parametrize(("args", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_of_error_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    assert_one_line_error(drover(tmp_path, *args), 2, message)


def test_an_outpost_without_its_bundle_says_how_to_make_one_and_exits_2(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("")
    certificate = ["--tls-cert", "cert.pem", "--tls-key", "key.pem", "--tls-ca", "ca.pem"]
    result = drover(tmp_path, "outpost", "--bundle", "b", "--hub", "tls://h:7422", *certificate)
    assert_one_line_error(
        result,
        2,
        f"--bundle: {tmp_path}/b/outpost.json: missing; make the bundle on the hub's side with "
        "`drover outpost init NAME --out DIR` and copy DIR here",
    )


def test_an_agent_not_enrolled_says_how_to_enroll_and_exits_2(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = drover(tmp_path, "agent", "--data-dir", str(state), "--systemd", "off")
    assert_one_line_error(
        result,
        2,
        f"this host is not enrolled ({state}/identity/enrollment.json is missing): run "
        f"`drover agent enroll --server URL --token TOKEN --data-dir {state}`",
    )


def test_enrolling_where_no_server_answers_says_so(tmp_path: Path) -> None:
    result = drover(
        tmp_path, "agent", "enroll", "--server", "http://127.0.0.1:9", "--token", "x",
        "--data-dir", str(tmp_path / "state"), "--host-id", "h1",
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the server at http://127.0.0.1:9")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("command", ["dev", "server"])
def test_a_port_in_use_is_one_line_of_error_and_exit_1(
    tmp_path: Path, taken_port: int, command: str
) -> None:
    listen = f"127.0.0.1:{taken_port}"
    args = [command, "--listen", listen, "--config", str(EXAMPLE)]

    result = drover(tmp_path, *args, *(["--data-dir", "state"] if command == "dev" else []))

    assert_one_line_error(result, 1, f"--listen {listen}: Address already in use")


class _Stub(BaseHTTPRequestHandler):
    """Answers every GET with the class's status and body, as some other web server would."""

    status = 200
    body = b"<html><body>\n  <h1>It works!</h1>\n</body></html>\n"

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def not_drover() -> Iterator[str]:
    """The URL of a web server that is not a drover server."""
    with ThreadingHTTPServer(("127.0.0.1", 0), _Stub) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            thread.join()


def test_a_server_that_answers_something_not_json_is_one_line_of_error_and_exit_1(
    tmp_path: Path, not_drover: str
) -> None:
    result = drover(tmp_path, "status", "--server", not_drover)

    message = f"the server at {not_drover} answered something that is not JSON"
    assert_one_line_error(result, 1, message)


def test_an_error_page_that_is_not_json_is_shown_on_one_line(
    tmp_path: Path, not_drover: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Stub, "status", 404)

    result = drover(tmp_path, "hosts", "--server", not_drover)

    assert_one_line_error(result, 2, "<html><body> <h1>It works!</h1> </body></html>")


def test_a_config_nested_too_deep_is_a_problem_at_its_file(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "deep.yaml").write_text("[" * 1000)

    result = drover(tmp_path, "config", "check", "config")

    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    assert result.stdout.startswith("deep.yaml:1:1: nesting too deep")
    assert result.stderr == "error: 1 problem(s) in config\n"
