"""Four-eyes approvals: which policies an action needs, and when a request's votes satisfy them.

An approval policy (config `approvals:`) names actions by application, environment and kind;
every policy that matches an action applies to it, and *all* of them must be satisfied before
it runs — the safe reading when two policies overlap. A request holds:

- its policies, copied from the config when the action is requested, so a config change later
  cannot change what this request needs;
- its votes: one per person (by principal name, whatever token or session they use);
- its state: `pending`, then `approved`, `rejected`, `expired` or `cancelled`, for good.

A policy is satisfied by `required` distinct approvers other than the requester, each in one of
its `from_groups` at the time of the vote (any approver when it names no group). One person's
approval counts toward every policy it can count toward. One rejection rejects the request. A
request is open for the shortest `open_for` of its policies.

Whether a person holds the `approve` permission on the application is the access layer's
question, asked before `judge`; everything else a vote depends on is decided here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field

from drover.model.schedule import Window

EVERY: tuple[str, ...] = ("*",)
DEFAULT_OPEN_FOR_S = 24 * 3600.0
MAX_OPEN_FOR_S = 30 * 24 * 3600.0
MAX_REQUIRED = 10
COMMAND_PREFIX = "command:"


class ApprovalState(StrEnum):
    PENDING = "pending"  # waiting for votes; the action is held, nothing is sent
    APPROVED = "approved"  # every policy satisfied: the action was released
    REJECTED = "rejected"  # an approver said no: the action never runs
    EXPIRED = "expired"  # not decided within its open time: the action never runs
    CANCELLED = "cancelled"  # withdrawn before a decision: the action never runs


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ApprovalPolicy(BaseModel):
    """One policy as it applies: what it covers and what it asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(description="its own name, or where it is written (file:line)")
    applications: tuple[str, ...] = Field(default=EVERY, description="application name globs")
    environments: tuple[str, ...] = Field(default=EVERY, description="environment globs")
    kinds: tuple[str, ...] = Field(
        default=EVERY, description="action kind globs; a command is command:<name>"
    )
    required: int = Field(default=1, ge=1, le=MAX_REQUIRED, description="distinct approvers")
    from_groups: tuple[str, ...] = Field(
        default=(), description="approvers must be in one of these; empty: any approver"
    )
    open_for_s: float = Field(default=DEFAULT_OPEN_FOR_S, gt=0, le=MAX_OPEN_FOR_S)
    # When the actions of schedules need no approval under it (model/schedule.py).
    preapproved: tuple[Window, ...] = ()

    def covers(self, subject: Subject) -> bool:
        return (
            _any_match(subject.application, self.applications)
            and _any_match(subject.environment, self.environments)
            and _any_match(subject.kind, self.kinds)
        )

    def accepts(self, groups: Iterable[str]) -> bool:
        """Whether a member of `groups` may count toward this policy."""
        return not self.from_groups or not set(self.from_groups).isdisjoint(groups)


@dataclass(frozen=True)
class Subject:
    """What a policy is matched against."""

    application: str
    environment: str
    kind: str  # see `kind_label`


def kind_label(kind: str, command: str | None = None) -> str:
    """How an action's kind reads to a policy: `restart`, or `command:<name>` for a command."""
    return f"{COMMAND_PREFIX}{command}" if command else kind


def _any_match(value: str, globs: Sequence[str]) -> bool:
    return any(fnmatchcase(value, glob) for glob in globs)


def applicable(policies: Iterable[ApprovalPolicy], subject: Subject) -> tuple[ApprovalPolicy, ...]:
    """The policies an action must satisfy; none: it needs no approval."""
    return tuple(p for p in policies if p.covers(subject))


@dataclass(frozen=True)
class Vote:
    approver: str
    decision: Decision
    at: datetime
    comment: str = ""  # for a rejection, its reason
    via: str = ""  # how the approver proved who they are (token, session, ...)
    groups: frozenset[str] = frozenset()  # theirs when they voted: what `from_groups` checks


@dataclass(frozen=True)
class PolicyProgress:
    policy: ApprovalPolicy
    approved_by: tuple[str, ...]  # those whose approval counts toward it, in vote order

    @property
    def satisfied(self) -> bool:
        return len(self.approved_by) >= self.policy.required

    @property
    def missing(self) -> int:
        return max(0, self.policy.required - len(self.approved_by))


@dataclass(frozen=True)
class Approval:
    """The approval request of one action, and its votes."""

    action_id: str
    subject: Subject
    requested_by: str
    requested_at: datetime
    open_until: datetime
    policies: tuple[ApprovalPolicy, ...]
    votes: tuple[Vote, ...] = ()
    state: ApprovalState = ApprovalState.PENDING
    decided_at: datetime | None = None
    decided_by: str | None = None  # the last approver, the rejecter, the canceller, `drover`
    reason: str | None = None  # why it was rejected, expired or cancelled

    def progress(self) -> tuple[PolicyProgress, ...]:
        approvals = [v for v in self.votes if v.decision is Decision.APPROVE]
        return tuple(
            PolicyProgress(p, tuple(v.approver for v in approvals if p.accepts(v.groups)))
            for p in self.policies
        )

    @property
    def satisfied(self) -> bool:
        return all(p.satisfied for p in self.progress())

    def vote_of(self, name: str) -> Vote | None:
        return next((v for v in self.votes if v.approver == name), None)

    def due(self, now: datetime) -> bool:
        """Pending past its open time: the loop expires it."""
        return self.state is ApprovalState.PENDING and now >= self.open_until

    def may_still_approve(self, name: str, groups: Iterable[str], now: datetime) -> bool:
        """Whether an approve by `name` (in `groups`) would count now: what the inbox shows.
        Holding the approve permission on the application is asked separately."""
        ballot = Ballot(name, frozenset(groups), Decision.APPROVE)
        return isinstance(judge(self, ballot, now), Counted)


def open_request(
    action_id: str,
    subject: Subject,
    policies: Sequence[ApprovalPolicy],
    requested_by: str,
    now: datetime,
) -> Approval:
    """A new pending request, open for the shortest `open_for` of its policies."""
    if not policies:
        raise ValueError("an approval request needs at least one policy")
    open_for = min(p.open_for_s for p in policies)
    return Approval(
        action_id=action_id,
        subject=subject,
        requested_by=requested_by,
        requested_at=now,
        open_until=now + timedelta(seconds=open_for),
        policies=tuple(policies),
    )


@dataclass(frozen=True)
class Ballot:
    """A vote someone is casting."""

    approver: str
    groups: frozenset[str]
    decision: Decision
    comment: str = ""  # required for a rejection: its reason
    via: str = ""


class Refusal(StrEnum):
    FORBIDDEN = "forbidden"  # this person may not cast this vote (403)
    CONFLICT = "conflict"  # the request's state or an earlier vote does not allow it (409)
    INVALID = "invalid"  # the vote itself is incomplete (422)


@dataclass(frozen=True)
class Refused:
    refusal: Refusal
    reason: str  # for the person who tried: what happened, and why not


@dataclass(frozen=True)
class Counted:
    approval: Approval  # with the vote, and the state it leads to
    vote: Vote


def judge(approval: Approval, ballot: Ballot, now: datetime) -> Refused | Counted:
    """Whether `ballot` counts, and what the request becomes with it."""
    if refused := _closed(approval, now):
        return refused
    name, action = ballot.approver, approval.action_id
    if name == approval.requested_by:
        if ballot.decision is Decision.REJECT:
            why = f"{name} requested action {action}: cancel it rather than reject it"
        else:
            why = f"{name} requested action {action}: someone else must approve it (four eyes)"
        return Refused(Refusal.FORBIDDEN, why)
    if earlier := approval.vote_of(name):
        done = "approved" if earlier.decision is Decision.APPROVE else "rejected"
        why = f"{name} already {done} action {action} at {_time(earlier.at)}: one vote per person"
        return Refused(Refusal.CONFLICT, why)
    if refused := _not_eligible(approval, ballot):
        return refused
    vote = Vote(name, ballot.decision, now, ballot.comment.strip(), ballot.via, ballot.groups)
    votes = (*approval.votes, vote)
    if ballot.decision is Decision.REJECT:
        if not vote.comment:
            return Refused(Refusal.INVALID, "a rejection needs a reason")
        rejected = replace(
            approval,
            votes=votes,
            state=ApprovalState.REJECTED,
            decided_at=now,
            decided_by=name,
            reason=vote.comment,
        )
        return Counted(rejected, vote)
    after = replace(approval, votes=votes)
    if after.satisfied:
        after = replace(after, state=ApprovalState.APPROVED, decided_at=now, decided_by=name)
    return Counted(after, vote)


def _closed(approval: Approval, now: datetime) -> Refused | None:
    """A request no vote can change any more."""
    action = approval.action_id
    match approval.state:
        case ApprovalState.APPROVED:
            by = ", ".join(dict.fromkeys(v.approver for v in approval.votes)) or "nobody"
            why = f"action {action} is already approved (by {by})"
        case ApprovalState.REJECTED:
            why = f"action {action} was rejected by {approval.decided_by}: {approval.reason}"
        case ApprovalState.CANCELLED:
            why = f"action {action} was cancelled by {approval.decided_by} before a decision"
        case ApprovalState.EXPIRED:
            why = f"the approval of action {action} expired at {_time(approval.open_until)}"
        case ApprovalState.PENDING if approval.due(now):
            why = f"the approval of action {action} expired at {_time(approval.open_until)}"
        case _:
            return None
    return Refused(Refusal.CONFLICT, why)


def _not_eligible(approval: Approval, ballot: Ballot) -> Refused | None:
    """An approval must count toward a policy still short of approvers; a rejection must come
    from someone who could approve under one of the request's policies."""
    if ballot.decision is Decision.APPROVE:
        wanted = [p.policy for p in approval.progress() if not p.satisfied]
    else:
        wanted = list(approval.policies)
    if any(p.accepts(ballot.groups) for p in wanted):
        return None
    groups = sorted({g for p in wanted for g in p.from_groups})
    mine = ", ".join(sorted(ballot.groups)) or "no group"
    verb = "approval" if ballot.decision is Decision.APPROVE else "decision"
    why = (
        f"{ballot.approver} ({mine}) is in none of the groups whose {verb} action "
        f"{approval.action_id} needs: {', '.join(groups)}"
    )
    return Refused(Refusal.FORBIDDEN, why)


def _time(at: datetime) -> str:
    return at.isoformat(timespec="seconds")
