"""Shell-style globs (`*`, `?`, `[...]`, `[!...]`), checked before use.

Matching is `fnmatch.fnmatchcase`, which never fails: it takes an unclosed `[` as a literal
character, so `shop-[web.service` would silently match nothing. Such a pattern is a mistake in
the config, and is reported as one.
"""

from __future__ import annotations


def glob_problem(pattern: str) -> str | None:
    """What is wrong with `pattern`, or None if it is a well-formed glob."""
    if not pattern:
        return "empty pattern"
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "]":
            return f"invalid glob {pattern!r}: ']' at position {i + 1} closes no '['"
        if char == "[":
            end = _set_end(pattern, i)
            if end is None:
                return f"invalid glob {pattern!r}: '[' at position {i + 1} is never closed"
            i = end
        i += 1
    return None


def _set_end(pattern: str, start: int) -> int | None:
    """The index of the `]` closing the set opened at `start`. As in fnmatch, a `]` right after
    `[` or `[!` belongs to the set."""
    j = start + 1
    if j < len(pattern) and pattern[j] == "!":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    end = pattern.find("]", j)
    return None if end < 0 else end
