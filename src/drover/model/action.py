"""Actions: what people ask for, and what each host answered."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class ActionKind(StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    COMMAND = "command"  # one of the application's declared commands (drover.model.command)
    # Answered by each agent itself, touching nothing: is the host there, and does it act on
    # what it is sent? (`mco ping`'s question, through the whole action path.)
    PING = "ping"


# What a host result says when the server marked it `expired` for want of an answer: the host
# may have been down, or the path lost the request or its answer; no cause is known.
NO_ANSWER = "no answer from the host by the deadline"  # the expiry sweep (store/actions.py)
SENT_NO_ANSWER = "sent, but no answer by its deadline"  # a rollout's batch (model/rollout.py)
UNANSWERED = (NO_ANSWER, SENT_NO_ANSWER)


class HostOutcome(StrEnum):
    """The state of one action on one host."""

    PENDING = "pending"  # recorded, not yet sent
    DISPATCHED = "dispatched"  # on the bus, no answer yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"  # not started before its deadline: never runs
    INTERRUPTED = "interrupted"  # the agent died while running it: never silently re-run
    REJECTED = "rejected"  # the agent refused it (unknown service, bad request)
    # Set by the server for a rollout, never by an agent:
    SKIPPED = "skipped"  # never sent: the rollout stopped or was cancelled first; never runs
    CANCELLED = "cancelled"  # sent, then given up on an operator's cancel; may have run, in part

    @property
    def is_final(self) -> bool:
        return self not in (HostOutcome.PENDING, HostOutcome.DISPATCHED)

    @property
    def is_success(self) -> bool:
        return self is HostOutcome.SUCCEEDED


class ActionState(StrEnum):
    """The state of an action as a whole, derived from its hosts (and its approval)."""

    PENDING_APPROVAL = "pending-approval"  # held until approved: nothing is sent before
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def action_state(outcomes: Iterable[HostOutcome]) -> ActionState:
    """Running until every host has a final outcome; then succeeded only if all succeeded."""
    seen = list(outcomes)
    if any(not o.is_final for o in seen):
        return ActionState.RUNNING
    if all(o.is_success for o in seen):
        return ActionState.SUCCEEDED
    return ActionState.FAILED
