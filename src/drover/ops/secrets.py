"""Secrets, resolved where they are needed (model/secret.py): by an agent as a process that
needs them starts, or as it connects to an SSH target; by the server as it sends an alert.

A reference `scheme:reference` goes to the backend of its scheme:

- `env:NAME` — the variable NAME of the agent's own environment (its unit's `Environment=` or
  `EnvironmentFile=`, which the host's administrator keeps);
- `file:/path` — the file's content, less one trailing newline (a file written by `echo`), at
  most MAX_FILE_BYTES, read as the agent's user;
- any other scheme — a backend installed beside the agent: a Python package that declares an
  entry point in the group `drover.secret_backends`, named after its scheme, whose object has
  `async resolve(reference: str) -> str` (SecretBackend). A vault, a cloud's secret manager.

A secret that cannot be had fails what needed it, with the reference and the reason, never the
value: the service does not start, the command does not run. Values are held only as long as
the start takes, and every value of a command's or a script's run is masked (`***`) in the
output drover reads back from it (Redactor), since that output goes to the server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from drover.model.secret import split
from drover.ops.cancels import bounded

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "drover.secret_backends"
MAX_FILE_BYTES = 64 * 1024
RESOLVE_TIMEOUT = 10.0  # seconds a backend may take for one reference
# Shorter values are not masked: masking every "1" or "ab" in an output would garble it and
# would not hide a value that short anyway. The agent says so when it resolves one.
MIN_MASKED = 4
MASK = b"***"


class SecretBackend(Protocol):
    async def resolve(self, reference: str) -> str:
        """The value `reference` names. Raises an exception that says why it cannot."""
        ...


class SecretUnavailable(Exception):
    """A secret could not be resolved. The message names the variable and the reference."""

    def __init__(self, variable: str, reference: str, reason: str) -> None:
        super().__init__(f"secret {reference} for {variable}: {reason}")
        self.variable = variable
        self.reference = reference


class EnvironmentBackend:
    """`env:NAME`: a variable of the agent's own environment."""

    async def resolve(self, reference: str) -> str:
        try:
            return os.environ[reference]
        except KeyError:
            raise LookupError("not set in the agent's environment") from None


class FileBackend:
    """`file:/path`: a file's content, less one trailing newline."""

    async def resolve(self, reference: str) -> str:
        return await asyncio.to_thread(_read_secret_file, Path(reference))


def _read_secret_file(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise LookupError("no such file") from None
    except IsADirectoryError:
        raise LookupError("a directory, not a file") from None
    except PermissionError:
        raise LookupError("permission denied to the agent's user") from None
    if len(data) > MAX_FILE_BYTES:
        raise LookupError(f"larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise LookupError("not UTF-8 text") from None
    if "\x00" in text:
        raise LookupError("holds a NUL byte, which no environment variable can")
    return text.removesuffix("\n")


BUILT_IN: dict[str, SecretBackend] = {"env": EnvironmentBackend(), "file": FileBackend()}


class Secrets:
    """The backends this agent resolves references with."""

    def __init__(self, backends: Mapping[str, SecretBackend] | None = None) -> None:
        self._backends = dict(BUILT_IN if backends is None else backends)

    @classmethod
    def installed(cls) -> Secrets:
        """The built-in backends and those installed as entry points."""
        backends = dict(BUILT_IN)
        for point in entry_points(group=ENTRY_POINT_GROUP):
            if point.name in BUILT_IN:
                log.warning("secret backend %s (%s) ignored: built in", point.name, point.value)
                continue
            try:
                loaded = point.load()
                backends[point.name] = loaded() if isinstance(loaded, type) else loaded
            except Exception as err:  # a broken plugin must not stop the agent
                log.warning("secret backend %s (%s) not loaded: %r", point.name, point.value, err)
        return cls(backends)

    @property
    def schemes(self) -> list[str]:
        return sorted(self._backends)

    async def resolve(self, variable: str, reference: str) -> str:
        """The value of one reference. Raises SecretUnavailable."""
        try:
            scheme, what = split(reference)
        except ValueError as err:
            raise SecretUnavailable(variable, reference, str(err)) from None
        backend = self._backends.get(scheme)
        if backend is None:
            known = ", ".join(self.schemes)
            raise SecretUnavailable(
                variable, reference, f"no secret backend {scheme!r} on this host (it has {known})"
            )
        try:
            value = await bounded(backend.resolve(what), RESOLVE_TIMEOUT)
        except TimeoutError:
            raise SecretUnavailable(
                variable, reference, f"its backend gave no answer within {RESOLVE_TIMEOUT:g}s"
            ) from None
        except Exception as err:
            raise SecretUnavailable(variable, reference, str(err) or type(err).__name__) from None
        if not isinstance(value, str) or "\x00" in value:
            raise SecretUnavailable(variable, reference, "its backend gave no text value")
        if 0 < len(value) < MIN_MASKED:
            log.warning(
                "secret %s for %s is shorter than %d characters: not masked in output",
                reference,
                variable,
                MIN_MASKED,
            )
        return value

    async def environment(self, secrets: Mapping[str, str]) -> dict[str, str]:
        """Variable → value for every variable → reference. Raises SecretUnavailable for the
        first (by variable name) that cannot be had."""
        return {name: await self.resolve(name, secrets[name]) for name in sorted(secrets)}


@functools.cache
def installed() -> Secrets:
    """This agent's backends, looked up once."""
    return Secrets.installed()


class Redactor:
    """Masks values in a stream of bytes that arrives in pieces of any size, exactly as masking
    the whole stream at once would: at each place the longest value that begins there.

    `feed` returns what may go on and holds back the end of the piece from the first place
    where a value may begin and end in the next piece. `flush` returns the rest at the end.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: list[bytes] = []
        self._pattern: re.Pattern[bytes] | None = None
        self._held = b""
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        """Mask these values too, from the next piece on."""
        masked = {*self._values, *(value.encode() for value in values if len(value) >= MIN_MASKED)}
        # Longest first: where two values begin at one place, the longer is masked whole.
        self._values = sorted(masked, key=len, reverse=True)
        alternatives = b"|".join(re.escape(value) for value in self._values)
        self._pattern = re.compile(alternatives) if self._values else None

    def feed(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        buffer = self._held + data
        undecided = self._undecided(buffer)
        out = bytearray()
        done = 0
        for match in self._pattern.finditer(buffer):
            if match.start() >= undecided:
                break
            out += buffer[done : match.start()] + MASK
            done = match.end()
        end = max(done, undecided)
        out += buffer[done:end]
        self._held = buffer[end:]
        return bytes(out)

    def flush(self) -> bytes:
        rest, self._held = self._held, b""
        return self._mask(rest)

    def text(self, text: str) -> str:
        """`text` whole, masked."""
        if self._pattern is None:
            return text
        return self._mask(text.encode(errors="surrogateescape")).decode(errors="surrogateescape")

    def feeding(self, sink: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """A sink that masks what it passes on to `sink` (flush at the end)."""

        def feed(data: bytes) -> None:
            if masked := self.feed(data):
                sink(masked)

        return feed

    def _undecided(self, buffer: bytes) -> int:
        """The first place from which the buffer's end is a value's beginning (the next piece
        decides whether the value is there), or the buffer's length."""
        longest = len(self._values[0])
        for at in range(max(0, len(buffer) - longest + 1), len(buffer)):
            rest = buffer[at:]
            if any(len(rest) < len(value) and value.startswith(rest) for value in self._values):
                return at
        return len(buffer)

    def _mask(self, data: bytes) -> bytes:
        return self._pattern.sub(MASK, data) if self._pattern is not None else data
