"""An operator's abort of the action this agent is running (bus/messages.py AbortRequest).

The executor gives one to each action it runs; its abort consumer sets it. What runs looks at
it where stopping is safe: a command at once (its process group is stopped), services between
one provider step and the next (a step begun is finished).
"""

from __future__ import annotations


class Abort:
    """Set at most once, by whom the abort was asked."""

    def __init__(self) -> None:
        self.by: str | None = None

    @property
    def requested(self) -> bool:
        return self.by is not None

    def request(self, by: str) -> None:
        if self.by is None:  # the first abort is the one that counts
            self.by = by or "someone"
