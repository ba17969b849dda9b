"""Identifiers that end up as NATS subject tokens and KV keys.

Host ids, application and service names each become exactly one token of a subject
(`drover.action.<host>`) or key (`svc.<host>.<app>.<service>`), which is what lets per-host
permissions be written as subject patterns. So they may not contain `.`, `*`, `>` or spaces.
"""

from __future__ import annotations

import re
import socket
from typing import Annotated

from pydantic import StringConstraints

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
HOST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
HostId = Annotated[str, StringConstraints(pattern=HOST_ID_PATTERN)]

_NAME_RE = re.compile(NAME_PATTERN)
_HOST_RE = re.compile(HOST_ID_PATTERN)


def is_name(value: str) -> bool:
    return _NAME_RE.match(value) is not None


def is_host_id(value: str) -> bool:
    return _HOST_RE.match(value) is not None


def host_id_from_hostname(hostname: str | None = None) -> str:
    """The short host name, with characters a subject token cannot hold replaced by `-`."""
    short = (hostname or socket.gethostname()).split(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", short).strip("-_") or "host"
    return cleaned[:63]
