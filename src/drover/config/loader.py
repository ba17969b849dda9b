"""YAML files to a FleetConfig, with every problem pointing at its file, line and column.

All files are read and checked before anything is reported, so one run shows every mistake.
Parsing uses ruamel's round-trip loader only because it keeps the position of every key, value
and list item; validation then runs on plain Python data, and each pydantic error's `loc` is
walked back through the parsed nodes to find where it came from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from drover.config.errors import ConfigError, ConfigProblem
from drover.config.schema import ConfigFile, FleetConfig, rule_key
from drover.config.source import Snapshot, is_config_path
from drover.model.approval import ApprovalPolicy
from drover.model.names import is_name

Position = tuple[int, int]  # 0-based line and column, as ruamel stores them
LocItem = str | int

_SECTIONS = ("applications", "hosts", "groups", "access", "alerts", "channels", "schedules")
# Parsing and validation recurse with every level; a file nested deeper than Python's stack
# allows is a mistake in that file, not a crash of whoever reads it.
_TOO_DEEP = "nesting too deep: lists and mappings nested more levels than can be read"
_SIMPLE_MESSAGES = {
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "list_type": "must be a list",
    "string_type": "must be a string",
}


@dataclass(frozen=True)
class _File:
    path: str
    root: CommentedMap


class _Found(Exception):
    """A problem that ends the reading of one file (the other files are still read)."""

    def __init__(self, problem: ConfigProblem) -> None:
        self.problem = problem


class _DuplicateKey(Exception):
    def __init__(self, key: object, position: Position, first_line: int | None) -> None:
        self.key = key
        self.position = position
        self.first_line = first_line


class _Constructor(RoundTripConstructor):
    """ruamel's own duplicate-key error only offers prose; this keeps the key and both places."""

    def check_mapping_key(
        self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any
    ) -> bool:
        if key in mapping:
            first = _entry(mapping, key)
            mark = key_node.start_mark
            raise _DuplicateKey(key, (mark.line, mark.column), first[0] if first else None)
        return True


def load_files(files: Mapping[str, bytes], revision: str) -> FleetConfig:
    """Parse, validate and merge config files (relative path -> content). Raises ConfigError."""
    problems: list[ConfigProblem] = []
    parsed: list[_File] = []
    for path in sorted(path for path in files if is_config_path(path)):
        try:
            root = _parse(path, files[path])
        except _Found as found:
            problems.append(found.problem)
            continue
        if root is not None:
            parsed.append(_File(path, root))
    # A group defined in a file that could not be parsed would look undefined.
    check_groups = not problems
    models: list[ConfigFile] = []
    for file in parsed:
        model, wrong = _validate(file)
        problems.extend(wrong)
        if model is not None:
            models.append(model)
    problems.extend(_duplicate_names(parsed))
    problems.extend(_duplicate_policy_names(parsed))
    if check_groups:
        problems.extend(_unknown_groups(parsed))
    if not problems:
        problems.extend(_unreachable_targets(parsed))
        problems.extend(_unknown_channels(parsed))
        problems.extend(_unknown_applications(parsed))
    if problems:
        raise ConfigError(problems)
    config = _merge(models, revision, dict(_rule_locations(parsed)))
    # Every file validated, so `models` holds one model per parsed file, in the same order.
    return config.model_copy(update={"approvals": _approval_policies(parsed, models)})


def load_snapshot(snapshot: Snapshot) -> FleetConfig:
    return load_files(snapshot.files, snapshot.revision)


def json_schema() -> dict[str, Any]:
    """The JSON schema of one config file, for editors and `drover config schema`."""
    return ConfigFile.model_json_schema()


def _parse(path: str, content: bytes) -> CommentedMap | None:
    """The top-level mapping of a file, or None for an empty one. Raises _Found."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as err:
        where = _text_position(content[: err.start].decode("utf-8"))
        raise _Found(_at(path, where, f"not valid UTF-8: {err.reason}")) from err
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    try:
        root = yaml.load(text)
    except _DuplicateKey as dup:
        first = f" (first at line {dup.first_line + 1})" if dup.first_line is not None else ""
        raise _Found(_at(path, dup.position, f"duplicate key {dup.key!r}{first}")) from dup
    except YAMLError as err:
        raise _Found(_yaml_problem(path, text, err)) from err
    except RecursionError as err:
        raise _Found(_at(path, (0, 0), _TOO_DEEP)) from err
    if root is None or isinstance(root, CommentedMap):
        return root
    start = _start(root) if isinstance(root, CommentedSeq) else (0, 0)
    sections = ", ".join(_SECTIONS)
    raise _Found(_at(path, start, f"top level must be a mapping with keys {sections}"))


def _validate(file: _File) -> tuple[ConfigFile | None, list[ConfigProblem]]:
    """The file's model, or None and what is wrong with it."""
    try:
        return ConfigFile.model_validate(_plain(file.root)), []
    except ValidationError as err:
        return None, [_validation_problem(file, error) for error in err.errors()]
    except RecursionError:
        return None, [_at(file.path, _start(file.root), _TOO_DEEP)]


def _yaml_problem(path: str, text: str, err: YAMLError) -> ConfigProblem:
    if isinstance(err, MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = (mark.line, mark.column) if mark else (0, 0)
        context = f" ({err.context})" if err.context else ""
        return _at(path, where, f"YAML syntax error: {err.problem or ''}{context}")
    if isinstance(err, ReaderError):
        where = _text_position(text[: err.position])
        return _at(path, where, f"unacceptable character #x{err.character:04x}: {err.reason}")
    return _at(path, (0, 0), f"YAML error: {err}")


def _text_position(before: str) -> Position:
    """The position just after `before`, the text preceding a problem."""
    return before.count("\n"), len(before) - (before.rfind("\n") + 1)


def _at(path: str, position: Position, message: str) -> ConfigProblem:
    line, column = position
    return ConfigProblem(file=path, line=line + 1, column=column + 1, message=message)


def _plain(node: object) -> object:
    """ruamel's subclasses (ScalarFloat, CommentedMap, ...) as the plain types they stand for."""
    if isinstance(node, dict):
        return {_plain(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, ScalarBoolean):  # an int subclass, for anchored booleans
        return bool(node)
    for kind in (bool, int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def _validation_problem(file: _File, error: ErrorDetails) -> ConfigProblem:
    loc = tuple(error["loc"])
    node_loc, subject = loc, loc
    part: Literal["key", "value"] = "value"
    if loc[-1:] == ("[key]",):
        node_loc, subject, part = loc[:-1], loc[:-2], "key"
    elif error["type"] == "extra_forbidden":
        subject, part = loc[:-1], "key"
    elif error["type"] == "missing":
        # The field is absent, so point at the mapping that lacks it.
        node_loc = subject = loc[:-1]
    position = _locate(file.root, node_loc, part)
    return _at(file.path, position, f"{_dotted(subject)}: {_describe(error)}")


def _describe(error: ErrorDetails) -> str:
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx", {})
    if kind == "extra_forbidden":
        return f"unknown field {loc[-1]!r}"
    if kind == "missing":
        return f"field required: {loc[-1]!r}"
    if kind in ("enum", "literal_error"):
        # pydantic says "'a', 'b' or 'c'"
        return "must be one of " + ", ".join(str(ctx["expected"]).rsplit(" or ", 1))
    if kind == "value_error":  # our own validators: their message is the whole story
        return str(ctx.get("error", error["msg"]))
    if kind == "string_pattern_mismatch":
        return f"invalid name {error['input']!r} (must match {ctx['pattern']})"
    return _SIMPLE_MESSAGES.get(kind, error["msg"])


def _dotted(loc: Sequence[LocItem]) -> str:
    text = "".join(f"[{item}]" if isinstance(item, int) else f".{item}" for item in loc)
    return text.lstrip(".") or "top level"


def _locate(root: CommentedMap, loc: Sequence[LocItem], part: Literal["key", "value"]) -> Position:
    """Where the node at `loc` is, or the deepest node on the way to it that exists."""
    node: object = root
    key_position = value_position = _start(root)
    for item in loc:
        step = _step(node, item)
        if step is None:
            break
        node, entry = step
        key_position = (entry[0], entry[1])
        value_position = (entry[2], entry[3]) if len(entry) == 4 else key_position
    # An empty value (`shop:`) starts wherever the next token does; its key is clearer.
    return key_position if part == "key" or node is None else value_position


def _step(node: object, item: object) -> tuple[object, list[int]] | None:
    """The child at `item` and its entry (see `_entry`); None if it is absent or has no position,
    as keys merged in with `<<:` have none of their own."""
    if not isinstance(node, CommentedMap | CommentedSeq):
        return None
    entry = _entry(node, item)
    return (node[item], entry) if entry else None


def _entry(node: CommentedMap | CommentedSeq, item: object) -> list[int] | None:
    """ruamel's [key line, key col, value line, value col] for a map key, [line, col] for an
    item of a list."""
    data: dict[object, list[int]] = node.lc.data or {}
    return data.get(item)


def _start(node: CommentedMap | CommentedSeq) -> Position:
    return int(node.lc.line or 0), int(node.lc.col or 0)


def _section(file: _File, name: str) -> CommentedMap:
    section = file.root.get(name)
    return section if isinstance(section, CommentedMap) else CommentedMap()


def _duplicate_names(files: Sequence[_File]) -> Iterator[ConfigProblem]:
    for section in _SECTIONS:
        first: dict[object, str] = {}
        for file in files:
            names = _section(file, section)
            for name in names:
                line, column = (_entry(names, name) or [0, 0])[:2]
                if name in first:
                    message = f"{section}.{name}: already defined at {first[name]}"
                    yield _at(file.path, (line, column), message)
                else:
                    first[name] = f"{file.path}:{line + 1}:{column + 1}"


def _unknown_groups(files: Sequence[_File]) -> Iterator[ConfigProblem]:
    defined = {name for file in files for name in _section(file, "groups")}
    for file in files:
        for where, groups, index in _group_references(file):
            group = groups[index]
            # Malformed names are already reported by validation.
            if isinstance(group, str) and is_name(group) and group not in defined:
                line, column = (_entry(groups, index) or [0, 0])[:2]
                message = f"{where}.groups[{index}]: unknown group {group!r}"
                yield _at(file.path, (line, column), message)


def _unreachable_targets(files: Sequence[_File]) -> Iterator[ConfigProblem]:
    """An ssh target's `via` must be a host with an agent: not itself, not another target."""
    targets = {
        name
        for file in files
        for name, spec in _section(file, "hosts").items()
        if isinstance(spec, CommentedMap) and isinstance(spec.get("ssh"), CommentedMap)
    }
    for file in files:
        for name, spec in _section(file, "hosts").items():
            ssh = spec.get("ssh") if isinstance(spec, CommentedMap) else None
            if not isinstance(ssh, CommentedMap) or ssh.get("via") not in targets:
                continue
            line, column = (_entry(ssh, "via") or [0, 0, 0, 0])[2:4]
            via = ssh["via"]
            why = "itself" if via == name else "another ssh target, which runs no agent"
            yield _at(file.path, (line, column), f"hosts.{name}.ssh.via: {via!r} is {why}")


def _unknown_channels(files: Sequence[_File]) -> Iterator[ConfigProblem]:
    """Every channel an alert rule names is defined in some file."""
    defined = {name for file in files for name in _section(file, "channels")}
    for file in files:
        for name, rule in _section(file, "alerts").items():
            channels = rule.get("channels") if isinstance(rule, CommentedMap) else None
            if not isinstance(channels, CommentedSeq):
                continue
            for index, channel in enumerate(channels):
                if channel not in defined:
                    line, column = (_entry(channels, index) or [0, 0])[:2]
                    message = f"alerts.{name}.channels[{index}]: unknown channel {channel!r}"
                    yield _at(file.path, (line, column), message)


def _unknown_applications(files: Sequence[_File]) -> Iterator[ConfigProblem]:
    """Every application a schedule names is defined in some file."""
    defined = {name for file in files for name in _section(file, "applications")}
    for file in files:
        for name, spec in _section(file, "schedules").items():
            if not isinstance(spec, CommentedMap) or spec.get("application") in defined:
                continue
            line, column = (_entry(spec, "application") or [0, 0, 0, 0])[2:4]
            message = f"schedules.{name}.application: unknown application {spec['application']!r}"
            yield _at(file.path, (line, column), message)


def _group_references(file: _File) -> Iterator[tuple[str, CommentedSeq, int]]:
    """Every place that names a group: an application's `groups`, and its rules'."""
    for app, spec in _section(file, "applications").items():
        if not isinstance(spec, CommentedMap):
            continue
        owners = [(f"applications.{app}", spec)]
        for index, rule in _rules(spec):
            owners.append((rule_key(str(app), index), rule))
        for where, owner in owners:
            groups = owner.get("groups")
            if isinstance(groups, CommentedSeq):
                for index in range(len(groups)):
                    yield where, groups, index


def _rules(app: CommentedMap) -> Iterator[tuple[int, CommentedMap]]:
    rules = app.get("discover")
    if isinstance(rules, CommentedSeq):
        for index, rule in enumerate(rules):
            if isinstance(rule, CommentedMap):
                yield index, rule


def _rule_locations(files: Sequence[_File]) -> Iterator[tuple[str, tuple[str, int, int]]]:
    for file in files:
        for app, spec in _section(file, "applications").items():
            if not isinstance(spec, CommentedMap):
                continue
            rules = spec.get("discover")
            for index, _rule in _rules(spec):
                line, column = (_entry(rules, index) or [0, 0])[:2]
                yield rule_key(str(app), index), (file.path, line + 1, column + 1)


def _approval_lines(file: _File) -> list[int]:
    """The line of each rule in the file's `approvals` list, 1-based."""
    rules = file.root.get("approvals")
    if not isinstance(rules, CommentedSeq):
        return []
    return [(_entry(rules, index) or [0])[0] + 1 for index in range(len(rules))]


def _approval_policies(
    files: Sequence[_File], models: Sequence[ConfigFile]
) -> list[ApprovalPolicy]:
    """Every file's approval rules as policies; one without a name is called by its place."""
    return [
        rule.policy(f"{file.path}:{line}")
        for file, model in zip(files, models, strict=True)
        for rule, line in zip(model.approvals, _approval_lines(file), strict=True)
    ]


def _duplicate_policy_names(files: Sequence[_File]) -> Iterator[ConfigProblem]:
    """Approvers tell policies apart by name: two with one name would read as one."""
    first: dict[str, str] = {}
    for file in files:
        rules = file.root.get("approvals")
        if not isinstance(rules, CommentedSeq):
            continue
        for index, rule in enumerate(rules):
            name = rule.get("name") if isinstance(rule, CommentedMap) else None
            if not isinstance(name, str):
                continue
            line, column = (_entry(rule, "name") or [0, 0])[:2]
            if name in first:
                message = f"approvals[{index}].name: {name!r} already names the rule at "
                yield _at(file.path, (line, column), message + first[name])
            else:
                first[name] = f"{file.path}:{line + 1}:{column + 1}"


def _merge(
    models: Sequence[ConfigFile], revision: str, rule_locations: dict[str, tuple[str, int, int]]
) -> FleetConfig:
    return FleetConfig(
        revision=revision,
        applications={name: app for model in models for name, app in model.applications.items()},
        hosts={name: host for model in models for name, host in model.hosts.items()},
        groups={name: group for model in models for name, group in model.groups.items()},
        access={group: binds for model in models for group, binds in model.access.items()},
        alerts={name: rule for model in models for name, rule in model.alerts.items()},
        channels={name: spec for model in models for name, spec in model.channels.items()},
        schedules={name: spec for model in models for name, spec in model.schedules.items()},
        rule_locations=rule_locations,
    )
