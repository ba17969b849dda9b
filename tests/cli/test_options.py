"""The checks of command-line values that pass: what the commands go on with."""

from __future__ import annotations

import pytest

from drover.cli import options
from drover.cli.client import CliError


@pytest.mark.parametrize("level", ["debug", "Info", "WARNING", "error"])
def test_a_log_level_is_taken_in_any_case(level: str) -> None:
    assert options.log_level(level) == level.upper()


def test_port_0_is_always_free() -> None:
    options.ensure_listen_free("127.0.0.1:0", "127.0.0.1", 0)


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///drover.db", "sqlite+aiosqlite:////var/lib/drover/drover.db"]
)
def test_an_async_database_url_is_taken_as_it_is(url: str) -> None:
    assert options.database_url(url) == url


@pytest.mark.parametrize(
    "url", ["nats://127.0.0.1:4222", "tls://nats.example.com", "ws://[::1]:8080", "wss://u:p@h"]
)
def test_a_nats_url_with_a_host_is_taken_as_it_is(url: str) -> None:
    assert options.nats_url(url) == url


@pytest.mark.parametrize(
    ("target", "expected"), [("shop", ("shop", None)), ("shop/web", ("shop", "web"))]
)
def test_an_action_target_is_an_application_and_maybe_a_service(
    target: str, expected: tuple[str, str | None]
) -> None:
    assert options.action_target(target) == expected


def test_a_listen_address_in_brackets_is_an_ipv6_host() -> None:
    assert options.listen_address("[::1]:8080") == ("::1", 8080)


@pytest.mark.parametrize("value", ["localhost", ":8080", "h:port", "h:65536"])
def test_a_listen_address_without_host_and_port_is_bad_input(value: str) -> None:
    with pytest.raises(CliError) as caught:
        options.listen_address(value)

    assert caught.value.exit_code == 2
