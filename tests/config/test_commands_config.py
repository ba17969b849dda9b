"""Commands in the config: an application may be only commands, and the example in the docs is
valid as written."""

from __future__ import annotations

from drover.config.loader import json_schema, load_files
from drover.model.command import ParamType

EXAMPLE = b"""\
applications:
  shop:
    groups: [web]
    commands:
      flush-cache:
        description: Drop the page cache of one region
        argv: [/usr/local/bin/shop-flush, --region, "{region}", --count, "{count}"]
        params:
          region: {type: string, pattern: "^[a-z]+$", required: true}
          count: {type: integer, minimum: 1, maximum: 10, default: 1}
          dry: {type: boolean, default: false}
          mode: {type: choice, choices: [soft, hard], default: soft}
        run_as: shop
        timeout: 60
groups:
  web: {hosts: ["web-*"]}
"""


def test_an_application_of_commands_only_is_valid() -> None:
    config = load_files({"shop.yaml": EXAMPLE}, "r1")
    shop = config.applications["shop"]
    assert shop.services == {} and shop.discover == []
    flush = shop.commands["flush-cache"]
    assert (flush.run_as, flush.timeout, flush.params["mode"].type) == (
        "shop",
        60.0,
        ParamType.CHOICE,
    )


def test_commands_are_in_the_json_schema_for_editors() -> None:
    schema = json_schema()
    assert "commands" in schema["$defs"]["Application"]["properties"]
    assert "ParamSpec" in schema["$defs"]
