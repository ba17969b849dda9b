"""Errors of the config package.

    Exception
    ├── ConfigError          the files were read, but what they say is wrong (one or many problems)
    └── ConfigSourceError    the files could not be read at all (missing folder, unknown git ref)

A `ConfigError` is for the people who edit the YAML, so every problem points at a file, line and
column; a `ConfigSourceError` is for whoever set up the source, so it names the source and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class ConfigProblem:
    """One thing wrong in one place. Orders by position, so a list of them reads top to bottom."""

    file: str  # path relative to the config root, e.g. "applications/shop.yaml"
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ConfigError(Exception):
    """Everything wrong with a set of config files, found in one pass and sorted."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(sorted(problems))
        super().__init__("\n".join(str(problem) for problem in self.problems))


class ConfigSourceError(Exception):
    """A config source that cannot be read: `source` says which one, `reason` says why."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")
