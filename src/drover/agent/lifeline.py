"""What the agent starts dies with it.

Without systemd there is nobody else to reap the agent's children if it is SIGKILLed: its own
services, and the commands it runs. Each gets SIGTERM from the kernel when the agent dies (as
systemd's default KillMode does with the agent's unit), rather than run on unsupervised — a
command's result is then reported `interrupted` by the agent's next life, which is what it is.
"""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_the_agent() -> None:  # pragma: no cover - runs in the child before exec
    """A `preexec_fn`: runs after the child took its user and group (a change of
    credentials would clear it), before exec."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
