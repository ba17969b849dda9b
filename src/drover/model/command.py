"""Commands: operations an application declares, run on its hosts with typed parameters.

A command is an argv template and the parameters it takes:

    argv: [/usr/local/bin/shop-flush, --region, "{region}", --count, "{count}"]
    params:
      region: {type: string, pattern: "^[a-z]+$", required: true}
      count: {type: integer, minimum: 1, maximum: 10, default: 1}

`{name}` stands for a parameter's value, anywhere inside an argument; `{{` and `}}` are literal
braces. A value replaces its placeholder inside the one argument it sits in: it is never split
into several arguments, and no shell ever reads it. The program itself (argv[0]) cannot be a
placeholder, so what a command runs is what its name says (approvals match on that name).

Values arrive as JSON or from the command line, so they are coerced: `"3"` is the integer 3,
`"yes"` the boolean true. A string's `pattern` must match the *whole* value. Every parameter is
either required or has a default, so an accepted request always renders a complete argv. The
process also gets every value in its environment as `DROVER_PARAM_<NAME>`, so a parameter the
argv does not name is still of use.

A string value is text: valid UTF-8 without NUL, at most MAX_STRING_VALUE characters. It may not
begin with `-` unless its parameter says `allow_dash: true`: a value sitting alone in an argument
would otherwise be read as an option by the program (`--output=/etc/cron.d/x`). A `pattern` is
compiled when the config is loaded and matched on the server's event loop: one that backtracks
catastrophically is its config author's mistake (the length cap only bounds it).

The server validates and renders; the agent runs exactly the argv it was sent.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from drover.model.secret import EnvName, EnvValue, plain_and_secret

ParamValue = str | int | bool
PARAM_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
ParamName = Annotated[str, StringConstraints(pattern=PARAM_NAME_PATTERN)]
# Small enough that matching a config's pattern against it stays quick.
MAX_STRING_VALUE = 1024
MAX_TIMEOUT_S = 24 * 3600.0
DEFAULT_TIMEOUT_S = 300.0
# A user, or user:group; names as useradd takes them, or numeric ids.
_ID = r"(?:[a-z_][a-z0-9_.-]{0,31}\$?|[0-9]{1,10})"
RUN_AS_PATTERN = rf"^{_ID}(?::{_ID})?$"
_PARAM_NAME = re.compile(PARAM_NAME_PATTERN)
_RUN_AS = re.compile(RUN_AS_PATTERN)
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class ParamType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CHOICE = "choice"


class ParamError(ValueError):
    """A request's parameter that the command does not accept, and why."""

    def __init__(self, param: str, why: str) -> None:
        super().__init__(f"{param}: {why}")
        self.param = param
        self.why = why


class TemplateError(ValueError):
    """An argv element that is not a valid template."""


@dataclass(frozen=True)
class Placeholder:
    name: str


Part = str | Placeholder


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    """A config's pattern, compiled once (when the config is loaded), not on every request."""
    return re.compile(pattern)


def _check_pattern(value: str | None) -> str | None:
    if value is not None:
        try:
            _regex(value)
        except re.error as err:
            raise ValueError(f"invalid regular expression {value!r}: {err}") from err
    return value


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored and sent as text (None: it can): the JSON columns, the
    bus and PostgreSQL all need valid UTF-8 (no lone surrogate such as "\\ud800") without NUL."""
    if "\x00" in value:
        return "must not contain a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid text: it holds a lone surrogate, which UTF-8 cannot encode"
    return None


class ParamSpec(BaseModel):
    """One parameter. Fields are validated in this order, so `default` is checked last, against
    everything else the parameter says."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    type: ParamType
    description: str = ""
    required: bool = False
    pattern: Annotated[str | None, AfterValidator(_check_pattern)] = Field(
        default=None, description="string: a regular expression the whole value must match"
    )
    minimum: int | None = Field(default=None, description="integer: the smallest value")
    maximum: int | None = Field(default=None, description="integer: the largest value")
    choices: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] | None = Field(
        default=None, description="choice: the values it may take"
    )
    allow_dash: bool = Field(
        default=False,
        description="string: the value may begin with '-' (by default refused, so that it "
        "cannot be read as an option)",
    )
    default: ParamValue | None = Field(default=None, description="used when none is given")

    @field_validator("default")
    @classmethod
    def _default_fits(cls, value: ParamValue | None, info: ValidationInfo) -> ParamValue | None:
        if value is None or "type" not in info.data:
            return value
        if info.data["type"] is ParamType.CHOICE and not info.data.get("choices"):
            return value  # no choices to check against: said on its own
        spec = cls.model_construct(**{**info.data, "default": None})
        try:
            return coerce(spec, value)
        except ValueError as err:
            raise ValueError(f"the default {value!r} is not a valid value: {err}") from err

    @model_validator(mode="after")
    def _fits_its_type(self) -> ParamSpec:
        for field, allowed in _FIELDS_OF_TYPE.items():
            value = getattr(self, field)
            if value is not None and value is not False and self.type not in allowed:
                kinds = " and ".join(str(t) for t in allowed)
                raise ValueError(f"'{field}' only applies to {kinds} parameters")
        if self.type is ParamType.CHOICE:
            if not self.choices:
                raise ValueError("a choice parameter needs 'choices'")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError("'choices' lists a value twice")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"'minimum' {self.minimum} is above 'maximum' {self.maximum}")
        if self.required and self.default is not None:
            raise ValueError("a required parameter has no use for a default")
        if not self.required and self.default is None:
            raise ValueError("give it a default, or make it required: the command needs a value")
        return self


_FIELDS_OF_TYPE: dict[str, tuple[ParamType, ...]] = {
    "pattern": (ParamType.STRING,),
    "allow_dash": (ParamType.STRING,),
    "minimum": (ParamType.INTEGER,),
    "maximum": (ParamType.INTEGER,),
    "choices": (ParamType.CHOICE,),
}


def _argv_item(value: str, info: ValidationInfo) -> str:
    """An argv element: no NUL, a valid template, placeholders that name declared parameters
    (`params` is validated before `argv`, so it is in `info.data` when it was valid)."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    parts = parse_template(value)
    params = info.data.get("params")
    if params is None:
        return value  # params themselves are wrong: reported on their own
    for name in placeholders(parts):
        if name not in params:
            declared = ", ".join(sorted(params)) or "none"
            raise ValueError(
                f"{{{name}}} names no parameter of this command (declared: {declared})"
            )
    return value


def _run_as(value: str) -> str:
    if not _RUN_AS.match(value):
        raise ValueError(f"{value!r}: expected user or user:group (names, or numeric ids)")
    user, _, group = value.partition(":")
    if user.isdigit() and not group:
        # A host with no passwd entry for the uid has no group to give it either: the agent
        # would have to make one up. Say which.
        raise ValueError(
            f"{value!r}: a numeric user id needs its group too, as uid:gid (e.g. {user}:{user})"
        )
    return value


class CommandSpec(BaseModel):
    """A command as the config declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    description: str = ""
    params: dict[ParamName, ParamSpec] = Field(default_factory=dict)
    argv: list[Annotated[str, AfterValidator(_argv_item)]] = Field(
        min_length=1, description="the program and its arguments; {param} placeholders"
    )
    run_as: Annotated[str, AfterValidator(_run_as)] | None = Field(
        default=None, description="user or user:group; default: the agent's user"
    )
    timeout: float = Field(
        default=DEFAULT_TIMEOUT_S,
        gt=0,
        le=MAX_TIMEOUT_S,
        description="seconds; then its process group is stopped (SIGTERM, then SIGKILL)",
    )
    env: dict[EnvName, EnvValue] = Field(
        default_factory=dict, description="values, or {secret: scheme:reference}"
    )

    @model_validator(mode="after")
    def _program_is_fixed(self) -> CommandSpec:
        program = parse_template(self.argv[0])
        if any(isinstance(part, Placeholder) for part in program) or not self.argv[0]:
            raise ValueError("argv[0], the program, must be a fixed, non-empty path or name")
        return self


class CommandInvocation(BaseModel):
    """One request of a command, checked and rendered: what an action records and sends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    params: dict[str, ParamValue]
    argv: list[str]
    run_as: str | None
    timeout_s: float
    output_limit: int = Field(description="bytes of output kept per host")
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(
        default_factory=dict, description="variable → secret reference, resolved on the host"
    )


def invoke(
    name: str, spec: CommandSpec, given: Mapping[str, object], output_limit: int
) -> CommandInvocation:
    """Check `given` against the command's parameters and render its argv. Raises ParamError."""
    values = resolve_params(spec, given)
    env, secrets = plain_and_secret(spec.env)
    return CommandInvocation(
        name=name,
        params=values,
        argv=render(spec.argv, values),
        run_as=spec.run_as,
        timeout_s=spec.timeout,
        output_limit=output_limit,
        env=env,
        secrets=secrets,
    )


def resolve_params(spec: CommandSpec, given: Mapping[str, object]) -> dict[str, ParamValue]:
    """Every declared parameter's value: the one given (coerced), or its default."""
    for name in sorted(given):
        if name not in spec.params:
            takes = ", ".join(sorted(spec.params)) or "no parameters"
            raise ParamError(name, f"unknown parameter; this command takes {takes}")
    values: dict[str, ParamValue] = {}
    for name, param in sorted(spec.params.items()):
        if name in given:
            try:
                values[name] = coerce(param, given[name])
            except ValueError as err:
                raise ParamError(name, str(err)) from err
        elif param.default is not None:
            values[name] = param.default
        else:
            raise ParamError(name, "required, and not given")
    return values


def coerce(param: ParamSpec, value: object) -> ParamValue:
    """`value` as the parameter's type, or ValueError saying why it is not acceptable."""
    match param.type:
        case ParamType.STRING:
            return _string(param, value)
        case ParamType.INTEGER:
            return _integer(param, value)
        case ParamType.BOOLEAN:
            return _boolean(value)
        case ParamType.CHOICE:
            choices = param.choices or []
            if not isinstance(value, str) or value not in choices:
                raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
            return value


def _string(param: ParamSpec, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string; got {value!r}")
    if problem := text_problem(value):
        raise ValueError(problem)
    if len(value) > MAX_STRING_VALUE:
        raise ValueError(f"longer than {MAX_STRING_VALUE} characters")
    if value.startswith("-") and not param.allow_dash:
        raise ValueError(
            f"{value!r} begins with '-', which the program could take for an option; "
            "the command's parameter must say allow_dash: true to accept it"
        )
    if param.pattern is not None and _regex(param.pattern).fullmatch(value) is None:
        raise ValueError(f"{value!r} does not match {param.pattern}")
    return value


def _integer(param: ParamSpec, value: object) -> int:
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"must be an integer; got {value!r}")
    if param.minimum is not None and value < param.minimum:
        raise ValueError(f"must be at least {param.minimum}; got {value}")
    if param.maximum is not None and value > param.maximum:
        raise ValueError(f"must be at most {param.maximum}; got {value}")
    return value


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"must be true or false; got {value!r}")


def render_value(value: ParamValue) -> str:
    """How a value appears in an argument: booleans as true/false, integers in decimal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(argv: list[str], values: Mapping[str, ParamValue]) -> list[str]:
    """The argv with every placeholder replaced; one argument in, one argument out."""
    return [
        "".join(
            part if isinstance(part, str) else render_value(values[part.name])
            for part in parse_template(arg)
        )
        for arg in argv
    ]


def param_environment(values: Mapping[str, ParamValue]) -> dict[str, str]:
    """`DROVER_PARAM_<NAME>` for every value: how a command reads what its argv does not name."""
    return {f"DROVER_PARAM_{name.upper()}": render_value(v) for name, v in values.items()}


def parse_template(arg: str) -> list[Part]:
    """An argument as literal text and placeholders. Raises TemplateError."""
    parts: list[Part] = []
    text: list[str] = []
    i = 0
    while i < len(arg):
        char = arg[i]
        if char in "{}" and arg[i + 1 : i + 2] == char:  # {{ or }}: a literal brace
            text.append(char)
            i += 2
        elif char == "{":
            end = arg.find("}", i + 1)
            name = arg[i + 1 : end]
            if end < 0 or not _PARAM_NAME.match(name):
                raise TemplateError(_bad_open(arg, i, end))
            if text:
                parts.append("".join(text))
                text = []
            parts.append(Placeholder(name))
            i = end + 1
        elif char == "}":
            raise TemplateError(f"'}}' at position {i} closes nothing; write '}}}}' for a brace")
        else:
            text.append(char)
            i += 1
    if text or not parts:
        parts.append("".join(text))
    return parts


def _bad_open(arg: str, at: int, end: int) -> str:
    if end < 0:
        return f"'{{' at position {at} is never closed; write '{{{{' for a brace"
    inside = arg[at : end + 1]
    return f"{inside!r} is not a placeholder: a parameter name goes inside {{}}"


def placeholders(parts: list[Part]) -> Iterator[str]:
    for part in parts:
        if isinstance(part, Placeholder):
            yield part.name


def escape(text: str) -> str:
    """`text` as template text that renders to itself."""
    return text.replace("{", "{{").replace("}", "}}")
