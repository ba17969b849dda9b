"""Secret references: where a value is, never the value.

The config names a secret where an environment variable's value would go:

    env:
      DB_PASSWORD: {secret: "file:/etc/shop/db-password"}
      API_TOKEN: {secret: "env:SHOP_API_TOKEN"}

`scheme:reference` — `env:NAME` is a variable of the agent's own environment, `file:/path` a
file on the host (its content, less one trailing newline), any other scheme a backend installed
on the host (ops/secrets.py). The agent resolves the reference when it starts the process that
needs it, on the host that runs it: the value is never in the config repository, on the bus, in
the server's database or in a log. The config, the bus and the database carry the reference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

SCHEME_PATTERN = r"[a-z][a-z0-9-]{0,31}"
_REFERENCE = re.compile(rf"^({SCHEME_PATTERN}):(.+)$", re.DOTALL)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def split(reference: str) -> tuple[str, str]:
    """(scheme, what the scheme's backend looks up). Raises ValueError saying what is wrong."""
    match = _REFERENCE.match(reference)
    if match is None:
        raise ValueError(
            f"{reference!r} is not a secret reference: expected scheme:reference, "
            "such as env:NAME or file:/path"
        )
    scheme, rest = match[1], match[2]
    if "\x00" in rest or "\n" in rest:
        raise ValueError(f"secret reference {reference!r} holds a NUL or a line break")
    if scheme == "env" and not _ENV_NAME.match(rest):
        raise ValueError(f"{reference!r}: env: takes a variable name, such as env:DB_PASSWORD")
    if scheme == "file" and not rest.startswith("/"):
        raise ValueError(f"{reference!r}: file: takes an absolute path, such as file:/etc/x")
    return scheme, rest


class SecretRef(BaseModel):
    """`{secret: "scheme:reference"}` in the config, where a value would be."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: str = Field(description="scheme:reference, such as env:NAME or file:/path")

    @field_validator("secret")
    @classmethod
    def _well_formed(cls, value: str) -> str:
        split(value)
        return value


def _env_value(value: object) -> object:
    """A text value, or {secret: reference} as a SecretRef, or one error that says which was
    expected (not one for each member of the union)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain a NUL character")
    if isinstance(value, str | SecretRef):
        return value
    if isinstance(value, dict):
        if set(value) != {"secret"} or not isinstance(value["secret"], str):
            keys = ", ".join(sorted(map(str, value))) or "none"
            raise ValueError(f"expected {{secret: scheme:reference}}; got the keys {keys}")
        split(value["secret"])
        return SecretRef(secret=value["secret"])
    raise ValueError(
        f"expected a text value (quote numbers and booleans) or {{secret: scheme:reference}}; "
        f"got {type(value).__name__} {value!r}"
    )


def _secret_only(value: object) -> object:
    if isinstance(value, str):
        raise ValueError(
            "a credential is never written into the config: give where it is, "
            "{secret: scheme:reference}, such as {secret: file:/etc/drover/ssh/key}"
        )
    return value


# A credential: only ever a reference.
SecretOnly = Annotated[SecretRef, BeforeValidator(_secret_only)]

# What the kernel can pass to exec: no '=' in a variable's name, no NUL in its value.
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
EnvValue = Annotated[str | SecretRef, BeforeValidator(_env_value)]


def plain_and_secret(
    env: Mapping[str, str | SecretRef],
) -> tuple[dict[str, str], dict[str, str]]:
    """An environment as the config gives it, as the bus carries it: the plain values, and the
    secret ones as variable → reference."""
    plain = {name: value for name, value in env.items() if isinstance(value, str)}
    secrets = {name: value.secret for name, value in env.items() if isinstance(value, SecretRef)}
    return plain, secrets
