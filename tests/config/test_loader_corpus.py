"""Every broken file in `corpus/` is reported at the exact file:line:column of its mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from drover.config.errors import ConfigError, ConfigProblem
from drover.config.loader import load_files

CORPUS = Path(__file__).parent / "corpus"

# file -> [(exact "file:line:col: path" prefix, phrase the message must contain)]
EXPECTED: dict[str, list[tuple[str, str]]] = {
    "syntax_error.yaml": [("syntax_error.yaml:4:47: ", "expected ',' or ']'")],
    "unterminated_string.yaml": [("unterminated_string.yaml:4:1: ", "quoted scalar")],
    "multiple_documents.yaml": [("multiple_documents.yaml:3:1: ", "single document")],
    "undefined_alias.yaml": [("undefined_alias.yaml:4:12: ", "undefined alias 'web'")],
    "duplicate_key.yaml": [
        ("duplicate_key.yaml:7:9: ", "duplicate key 'command' (first at line 5)")
    ],
    "unknown_field.yaml": [
        ("unknown_field.yaml:6:9: applications.shop.services.web: ", "unknown field 'comand'")
    ],
    "unknown_top_level.yaml": [("unknown_top_level.yaml:2:1: ", "unknown field 'aplications'")],
    "bad_target.yaml": [
        (
            "bad_target.yaml:6:17: applications.shop.services.web.target: ",
            "must be one of 'running', 'stopped'",
        )
    ],
    "missing_command.yaml": [
        (
            "missing_command.yaml:5:9: applications.shop.services.web: ",
            "a process service needs 'command'",
        )
    ],
    "missing_services.yaml": [
        (
            "missing_services.yaml:2:9: applications.shop: ",
            "an application needs 'services', 'discover' rules or 'commands'",
        )
    ],
    "discover_bad_glob.yaml": [
        (
            "discover_bad_glob.yaml:5:35: applications.shop.discover[0].units[1]: ",
            "invalid glob 'shop-[web.service': '[' at position 6 is never closed",
        )
    ],
    "discover_no_criterion.yaml": [
        (
            "discover_no_criterion.yaml:6:9: applications.shop.discover[1]: ",
            "a discovery rule needs 'units', 'slice' or 'properties'",
        )
    ],
    "discover_unknown_group.yaml": [
        (
            "discover_unknown_group.yaml:8:23: applications.shop.discover[0].groups[1]: ",
            "unknown group 'db'",
        )
    ],
    "discover_no_host.yaml": [
        (
            "discover_no_host.yaml:3:5: applications.shop: ",
            "discover[0] looks on no host: give it or the application 'hosts' or 'groups'",
        )
    ],
    "discover_bad_property.yaml": [
        (
            "discover_bad_property.yaml:5:22: applications.shop.discover[0].properties: ",
            "invalid name 'Application'",
        )
    ],
    "bad_name.yaml": [("bad_name.yaml:2:3: applications: ", "invalid name 'Shop.Front'")],
    "bad_host_id.yaml": [("bad_host_id.yaml:3:3: hosts: ", "invalid name 'web.02'")],
    "bad_command_item.yaml": [
        ("bad_command_item.yaml:9:13: applications.shop.services.web.command[3]: ", "string")
    ],
    "bad_stop_timeout.yaml": [
        ("bad_stop_timeout.yaml:4:55: applications.shop.services.web.stop_timeout: ", "than 0")
    ],
    "services_not_mapping.yaml": [
        ("services_not_mapping.yaml:3:15: applications.shop.services: ", "must be a mapping")
    ],
    "empty_application.yaml": [
        ("empty_application.yaml:2:3: applications.shop: ", "must be a mapping")
    ],
    "not_a_mapping.yaml": [("not_a_mapping.yaml:1:1: ", "top level must be a mapping")],
    "unknown_group.yaml": [
        ("unknown_group.yaml:5:19: applications.shop.groups[1]: ", "unknown group 'db'")
    ],
    "not_utf8.yaml": [("not_utf8.yaml:3:21: ", "not valid UTF-8")],
    "command_unknown_placeholder.yaml": [
        (
            "command_unknown_placeholder.yaml:6:53: "
            "applications.shop.commands.flush-cache.argv[2]: ",
            "{regoin} names no parameter of this command (declared: region)",
        )
    ],
    "command_bad_default.yaml": [
        (
            "command_bad_default.yaml:8:68: "
            "applications.shop.commands.flush-cache.params.count.default: ",
            "the default 11 is not a valid value: must be at most 10; got 11",
        )
    ],
    "command_bad_pattern.yaml": [
        (
            "command_bad_pattern.yaml:10:22: "
            "applications.shop.commands.flush-cache.params.region.pattern: ",
            "invalid regular expression '^[a-z+$': unterminated character set",
        )
    ],
    "command_lone_brace.yaml": [
        (
            "command_lone_brace.yaml:6:33: applications.shop.commands.report.argv[1]: ",
            "'{\"ok\": true}' is not a placeholder: a parameter name goes inside {}",
        )
    ],
    "command_no_host.yaml": [
        (
            "command_no_host.yaml:3:5: applications.tools: ",
            "its commands run on no host: give the application 'hosts' or 'groups'",
        )
    ],
    "too_deep.yaml": [("too_deep.yaml:1:1: ", "nesting too deep")],
}


def problems_of(*names: str) -> tuple[ConfigProblem, ...]:
    files = {name: (CORPUS / name).read_bytes() for name in names}
    with pytest.raises(ConfigError) as caught:
        load_files(files, revision="r1")
    return caught.value.problems


def test_every_corpus_file_has_an_expectation() -> None:
    assert sorted(path.name for path in CORPUS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_broken_file_is_reported_where_the_mistake_is(name: str) -> None:
    problems = [str(problem) for problem in problems_of(name)]

    assert len(problems) == len(EXPECTED[name]), problems
    for problem, (prefix, phrase) in zip(problems, EXPECTED[name], strict=True):
        assert problem.startswith(prefix), problem
        assert phrase in problem.removeprefix(prefix), problem


def test_problems_in_several_files_are_reported_together_and_sorted() -> None:
    names = ["unknown_field.yaml", "bad_host_id.yaml", "duplicate_key.yaml", "not_a_mapping.yaml"]

    problems = problems_of(*names)

    assert [(p.file, p.line, p.column) for p in problems] == [
        ("bad_host_id.yaml", 3, 3),
        ("duplicate_key.yaml", 7, 9),
        ("not_a_mapping.yaml", 1, 1),
        ("unknown_field.yaml", 6, 9),
    ]


def test_several_problems_in_one_file_are_all_reported() -> None:
    files = {
        "shop.yaml": b"applications:\n"
        b"  shop:\n"
        b"    services:\n"
        b"      web: {comand: [a], target: up}\n"
        b"hosts:\n"
        b"  web-01: {labels: {rack: 7}}\n"
    }
    with pytest.raises(ConfigError) as caught:
        load_files(files, revision="r1")

    assert str(caught.value).splitlines() == [
        "shop.yaml:4:13: applications.shop.services.web: unknown field 'comand'",
        "shop.yaml:4:34: applications.shop.services.web.target: "
        "must be one of 'running', 'stopped'",
        "shop.yaml:6:27: hosts.web-01.labels.rack: must be a string",
    ]
