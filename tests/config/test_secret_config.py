"""Secret references in the config: where an environment variable's value goes, in services and
commands; checked as the config loads, each mistake at its file:line:col; carried to the agent as
references."""

from __future__ import annotations

import pytest

from drover.config.loader import load_files
from drover.model.command import invoke
from drover.server.desired import desired_for_host
from tests.config.test_loader import problems_of

SHOP = b"""\
applications:
  shop:
    hosts: [h1]
    services:
      web:
        command: [shop-web]
        env:
          PORT: "8101"
          DB_PASSWORD: {secret: "file:/etc/shop/db-password"}
          API_TOKEN: {secret: "env:SHOP_API_TOKEN"}
    commands:
      migrate:
        argv: [shop-migrate]
        env:
          DB_PASSWORD: {secret: "file:/etc/shop/db-password"}
          VAULT_TOKEN: {secret: "vault:secret/data/shop#token"}
          MODE: fast
"""


def test_references_load_and_reach_the_agent_as_references_apart_from_plain_values() -> None:
    config = load_files({"shop.yaml": SHOP}, revision="r1")
    [web] = desired_for_host(config, "h1").services
    assert web.env == {"PORT": "8101"}
    assert web.secrets == {
        "DB_PASSWORD": "file:/etc/shop/db-password",
        "API_TOKEN": "env:SHOP_API_TOKEN",
    }
    spec = config.applications["shop"].commands["migrate"]
    run = invoke("migrate", spec, {}, output_limit=1000)
    assert run.env == {"MODE": "fast"}
    assert run.secrets == {
        "DB_PASSWORD": "file:/etc/shop/db-password",
        "VAULT_TOKEN": "vault:secret/data/shop#token",
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            '{secret: "file:etc/shop"}',
            "'file:etc/shop': file: takes an absolute path, such as file:/etc/x",
        ),
        (
            '{secret: "env:1ST"}',
            "'env:1ST': env: takes a variable name, such as env:DB_PASSWORD",
        ),
        (
            '{secret: "hunter2"}',
            "'hunter2' is not a secret reference: expected scheme:reference, "
            "such as env:NAME or file:/path",
        ),
        (
            '{secret: "Vault:x"}',
            "'Vault:x' is not a secret reference: expected scheme:reference, "
            "such as env:NAME or file:/path",
        ),
        ("{secrets: env:X}", "expected {secret: scheme:reference}; got the keys secrets"),
        (
            "{secret: env:X, default: y}",
            "expected {secret: scheme:reference}; got the keys default, secret",
        ),
        (
            "8101",
            "expected a text value (quote numbers and booleans) or {secret: scheme:reference}; "
            "got int 8101",
        ),
    ],
)
def test_a_malformed_reference_is_one_clear_error_at_its_place(value: str, problem: str) -> None:
    for where, prefix in (
        ("services:\n      web:\n        command: [x]\n", "services.web"),
        ("commands:\n      run:\n        argv: [x]\n", "commands.run"),
    ):
        head = "applications:\n  shop:\n    hosts: [h1]\n    "
        text = f"{head}{where}        env:\n          K: {value}\n"
        assert problems_of({"a.yaml": text.encode()}) == [
            f"a.yaml:8:14: applications.shop.{prefix}.env.K: {problem}"
        ]
