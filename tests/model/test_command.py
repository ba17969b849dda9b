"""Commands' parameters and argv templates: what is accepted, what is refused and why, and that
a value always stays one argument, whatever it holds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from drover.model.command import (
    CommandInvocation,
    CommandSpec,
    ParamError,
    ParamSpec,
    ParamType,
    Placeholder,
    TemplateError,
    escape,
    invoke,
    param_environment,
    parse_template,
    render,
    resolve_params,
)

FLUSH = CommandSpec.model_validate(
    {
        "description": "Drop the page cache of one region",
        "argv": ["/usr/local/bin/shop-flush", "--region", "{region}", "--count", "{count}"],
        "params": {
            "region": {"type": "string", "pattern": "^[a-z]+$", "required": True},
            "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
            "dry": {"type": "boolean", "default": False},
            "mode": {"type": "choice", "choices": ["soft", "hard"], "default": "soft"},
        },
        "run_as": "shop",
        "timeout": 60,
    }
)


def test_a_request_is_checked_and_rendered_into_the_argv_the_action_records() -> None:
    assert invoke("flush-cache", FLUSH, {"region": "eu", "count": "3"}, 1000) == (
        CommandInvocation(
            name="flush-cache",
            params={"count": 3, "dry": False, "mode": "soft", "region": "eu"},
            argv=["/usr/local/bin/shop-flush", "--region", "eu", "--count", "3"],
            run_as="shop",
            timeout_s=60.0,
            output_limit=1000,
        )
    )


@pytest.mark.parametrize(
    ("given", "param", "why"),
    [
        ({}, "region", "required, and not given"),
        (
            {"region": "eu", "size": 1},
            "size",
            "unknown parameter; this command takes count, dry, mode, region",
        ),
        ({"region": "EU"}, "region", "'EU' does not match ^[a-z]+$"),
        ({"region": "eu-west"}, "region", "'eu-west' does not match ^[a-z]+$"),  # whole match
        ({"region": 7}, "region", "must be a string; got 7"),
        ({"region": "eu\x00"}, "region", "must not contain a NUL character"),
        ({"region": "e" * 1025}, "region", "longer than 1024 characters"),
        (
            {"region": "\ud800"},
            "region",
            "is not valid text: it holds a lone surrogate, which UTF-8 cannot encode",
        ),
        ({"region": "eu", "count": 0}, "count", "must be at least 1; got 0"),
        ({"region": "eu", "count": 11}, "count", "must be at most 10; got 11"),
        ({"region": "eu", "count": 2.5}, "count", "must be an integer; got 2.5"),
        ({"region": "eu", "count": True}, "count", "must be an integer; got True"),
        ({"region": "eu", "count": "two"}, "count", "must be an integer; got 'two'"),
        ({"region": "eu", "dry": "perhaps"}, "dry", "must be true or false; got 'perhaps'"),
        ({"region": "eu", "dry": 1}, "dry", "must be true or false; got 1"),
        ({"region": "eu", "mode": "firm"}, "mode", "must be one of soft, hard; got 'firm'"),
    ],
)
def test_a_value_that_does_not_fit_is_refused_naming_the_parameter_and_why(
    given: dict[str, Any], param: str, why: str
) -> None:
    with pytest.raises(ParamError) as refused:
        resolve_params(FLUSH, given)
    assert (refused.value.param, refused.value.why) == (param, why)
    assert str(refused.value) == f"{param}: {why}"


@pytest.mark.parametrize(
    ("given", "value"),
    [("3", 3), (" 4 ", 4), ("+5", 5), (6, 6)],
)
def test_integers_come_as_numbers_or_strings(given: object, value: int) -> None:
    assert resolve_params(FLUSH, {"region": "eu", "count": given})["count"] == value


@pytest.mark.parametrize(
    ("given", "value"),
    [(True, True), ("true", True), ("Yes", True), ("on", True), ("1", True), ("no", False)],
)
def test_booleans_come_as_booleans_or_the_usual_words(given: object, value: bool) -> None:
    assert resolve_params(FLUSH, {"region": "eu", "dry": given})["dry"] is value


def test_values_reach_the_process_environment_too() -> None:
    values = resolve_params(FLUSH, {"region": "eu", "dry": "yes"})
    assert param_environment(values) == {
        "DROVER_PARAM_COUNT": "1",
        "DROVER_PARAM_DRY": "true",
        "DROVER_PARAM_MODE": "soft",
        "DROVER_PARAM_REGION": "eu",
    }


def spec_problem(**fields: Any) -> str:
    with pytest.raises(ValidationError) as wrong:
        ParamSpec.model_validate(fields)
    [error] = wrong.value.errors()
    return f"{'.'.join(str(p) for p in error['loc']) or '-'}: {error['ctx']['error']}"


def test_a_parameter_declaration_that_cannot_work_is_refused_where_it_is_wrong() -> None:
    assert spec_problem(type="integer", minimum=1, maximum=5, default=9) == (
        "default: the default 9 is not a valid value: must be at most 5; got 9"
    )
    assert spec_problem(type="string", pattern="[a-", default="a") == (
        "pattern: invalid regular expression '[a-': unterminated character set at position 0"
    )
    assert spec_problem(type="choice", choices=["a"], default="b") == (
        "default: the default 'b' is not a valid value: must be one of a; got 'b'"
    )
    assert spec_problem(type="integer", pattern="x", default=1) == (
        "-: 'pattern' only applies to string parameters"
    )
    assert spec_problem(type="choice", default="a") == "-: a choice parameter needs 'choices'"
    assert spec_problem(type="choice", choices=["a", "a"], default="a") == (
        "-: 'choices' lists a value twice"
    )
    assert spec_problem(type="integer", minimum=5, maximum=1, default=3) == (
        "default: the default 3 is not a valid value: must be at least 5; got 3"
    )
    assert spec_problem(type="integer", minimum=5, maximum=1, required=True) == (
        "-: 'minimum' 5 is above 'maximum' 1"
    )
    assert spec_problem(type="string", required=True, default="x") == (
        "-: a required parameter has no use for a default"
    )
    assert spec_problem(type="boolean") == (
        "-: give it a default, or make it required: the command needs a value"
    )


def command_problem(**fields: Any) -> str:
    with pytest.raises(ValidationError) as wrong:
        CommandSpec.model_validate(fields)
    [error] = wrong.value.errors()
    return f"{'.'.join(str(p) for p in error['loc']) or '-'}: {error['ctx']['error']}"


def test_an_argv_template_that_cannot_render_is_refused_at_its_argument() -> None:
    region = {"region": {"type": "string", "required": True}}
    assert command_problem(argv=["echo", "{regoin}"], params=region) == (
        "argv.1: {regoin} names no parameter of this command (declared: region)"
    )
    assert command_problem(argv=["echo", "{region"], params=region) == (
        "argv.1: '{' at position 0 is never closed; write '{{' for a brace"
    )
    assert command_problem(argv=["echo", "a}b"], params=region) == (
        "argv.1: '}' at position 1 closes nothing; write '}}' for a brace"
    )
    assert command_problem(argv=["echo", "{0}"]) == (
        "argv.1: '{0}' is not a placeholder: a parameter name goes inside {}"
    )
    assert command_problem(argv=["{region}", "x"], params=region) == (
        "-: argv[0], the program, must be a fixed, non-empty path or name"
    )
    assert command_problem(argv=["echo"], run_as="root;rm") == (
        "run_as: 'root;rm': expected user or user:group (names, or numeric ids)"
    )


def test_braces_doubled_are_literal_and_placeholders_sit_inside_arguments() -> None:
    assert parse_template("--region={region}") == ["--region=", Placeholder("region")]
    assert parse_template("{{json}}") == ["{json}"]
    assert parse_template("{{{mode}}}") == ["{", Placeholder("mode"), "}"]
    assert parse_template("") == [""]
    assert render(["x={a}{b}", "{{a}}"], {"a": 1, "b": True}) == ["x=1true", "{a}"]


def test_a_template_that_is_not_one_raises() -> None:
    for bad in ("{", "}", "{a", "{ a }", "{A}"):
        with pytest.raises(TemplateError):
            parse_template(bad)


texts = st.text(alphabet=st.characters(exclude_characters="\x00"), max_size=40)
values = st.one_of(texts, st.integers(), st.booleans())


@given(texts)
def test_escaped_text_renders_to_itself(text: str) -> None:
    assert render([escape(text)], {}) == [text]


@given(st.lists(texts, min_size=1, max_size=6), st.lists(values, min_size=1, max_size=3))
def test_a_value_never_splits_or_merges_arguments_whatever_it_holds(
    literals: list[str], given: list[object]
) -> None:
    names = [f"p{n}" for n in range(len(given))]
    argv = [escape(text) + "".join(f"{{{name}}}" for name in names) for text in literals]
    values = dict(zip(names, given, strict=True))
    rendered = render(argv, values)  # type: ignore[arg-type]
    assert len(rendered) == len(argv)
    shown = "".join(("true" if v else "false") if isinstance(v, bool) else str(v) for v in given)
    assert rendered == [text + shown for text in literals]


def test_types_are_the_four_documented() -> None:
    assert [t.value for t in ParamType] == ["string", "integer", "boolean", "choice"]


OPTIONS = CommandSpec.model_validate(
    {
        "argv": ["git", "checkout", "{ref}", "--", "{path}"],
        "params": {
            "ref": {"type": "string", "required": True},
            "path": {"type": "string", "allow_dash": True, "default": "."},
            "short": {"type": "string", "pattern": "^[a-z-]{1,8}$", "default": "x"},
        },
    }
)


def test_a_string_beginning_with_a_dash_is_refused_unless_the_parameter_allows_it() -> None:
    with pytest.raises(ParamError) as refused:
        resolve_params(OPTIONS, {"ref": "--output=/etc/cron.d/x"})
    assert (refused.value.param, refused.value.why) == (
        "ref",
        "'--output=/etc/cron.d/x' begins with '-', which the program could take for an option; "
        "the command's parameter must say allow_dash: true to accept it",
    )
    # A pattern that happens to let a dash through does not: allowing it is said on purpose.
    with pytest.raises(ParamError, match="begins with '-'"):
        resolve_params(OPTIONS, {"ref": "main", "short": "-x"})
    values = resolve_params(OPTIONS, {"ref": "main", "path": "-weird-file"})
    assert (values["ref"], values["path"]) == ("main", "-weird-file")
    assert resolve_params(OPTIONS, {"ref": "re-lease"})["ref"] == "re-lease"  # inside is fine


def test_allow_dash_is_for_strings_and_a_default_is_checked_against_it() -> None:
    assert spec_problem(type="integer", allow_dash=True, default=1) == (
        "-: 'allow_dash' only applies to string parameters"
    )
    assert spec_problem(type="string", default="-v") == (
        "default: the default '-v' is not a valid value: '-v' begins with '-', which the "
        "program could take for an option; the command's parameter must say allow_dash: true "
        "to accept it"
    )
    assert spec_problem(type="string", minimum=0, default="a") == (
        "-: 'minimum' only applies to integer parameters"
    )


def test_a_numeric_run_as_needs_its_group() -> None:
    assert command_problem(argv=["echo"], run_as="1001") == (
        "run_as: '1001': a numeric user id needs its group too, as uid:gid (e.g. 1001:1001)"
    )
    for fine in ("1001:1001", "1001:shop", "shop", "shop:1001"):
        assert CommandSpec.model_validate({"argv": ["echo"], "run_as": fine}).run_as == fine
