"""Where the CLI finds its API token, and where `drover login` keeps one.

The first of these that is set wins:

1. `DROVER_TOKEN`: the token itself (CI jobs, scripts with a secret store);
2. `DROVER_TOKEN_FILE`: a file holding it (`drover dev` prints one to use);
3. `$XDG_CONFIG_HOME/drover/token`, by default `~/.config/drover/token`: where `drover login`
   writes it, readable by its owner only.

Without any, requests go unauthenticated and the server answers 401 with what to do.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from drover.cli.client import CliError

TOKEN_ENV = "DROVER_TOKEN"  # noqa: S105 (names of variables, not secrets)
TOKEN_FILE_ENV = "DROVER_TOKEN_FILE"  # noqa: S105


def default_token_file(environ: Mapping[str, str] = os.environ) -> Path:
    config_home = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "drover" / "token"


def token_file(environ: Mapping[str, str] = os.environ) -> Path:
    """The file `drover login` writes: DROVER_TOKEN_FILE if set, else the default."""
    given = environ.get(TOKEN_FILE_ENV)
    return Path(given) if given else default_token_file(environ)


def find_token(environ: Mapping[str, str] = os.environ) -> str | None:
    if token := environ.get(TOKEN_ENV, "").strip():
        return token
    given = environ.get(TOKEN_FILE_ENV)
    path = Path(given) if given else default_token_file(environ)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        if given:  # named on purpose: that it is missing is worth saying
            raise CliError(f"{TOKEN_FILE_ENV}={given}: no such file", 2) from None
        return None
    except OSError as err:
        raise CliError(f"cannot read the token file {path}: {err.strerror or err}", 2) from err
    return text or None


def store_token(path: Path, secret: str) -> None:
    """Write `secret` to `path`, readable by its owner only, replacing any token there at
    once (never a half-written file, never a moment readable by others)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".token-")  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secret + "\n")
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as err:
        raise CliError(f"cannot write the token file {path}: {err.strerror or err}", 1) from err
