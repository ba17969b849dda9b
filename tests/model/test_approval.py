"""Four-eyes approval policies: which ones cover an action, and which votes count."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from drover.model.approval import (
    Approval,
    ApprovalPolicy,
    ApprovalState,
    Ballot,
    Counted,
    Decision,
    Refusal,
    Refused,
    Subject,
    applicable,
    judge,
    kind_label,
    open_request,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PROD_RESTART = Subject("shop", "production", "restart")


def policy(**fields: object) -> ApprovalPolicy:
    return ApprovalPolicy.model_validate({"name": "p", **fields})


def request(*policies: ApprovalPolicy, by: str = "rita") -> Approval:
    return open_request("a1", PROD_RESTART, policies or (policy(),), by, T0)


def ballot(name: str, *groups: str, reject: str | None = None) -> Ballot:
    decision = Decision.APPROVE if reject is None else Decision.REJECT
    return Ballot(name, frozenset(groups), decision, reject or "", via="token")


def counted(approval: Approval, vote: Ballot, at: datetime = T0) -> Approval:
    verdict = judge(approval, vote, at)
    assert isinstance(verdict, Counted), verdict
    return verdict.approval


def refused(approval: Approval, vote: Ballot, at: datetime = T0) -> Refused:
    verdict = judge(approval, vote, at)
    assert isinstance(verdict, Refused), verdict
    return verdict


# Which policies cover an action


def test_a_policy_with_no_criteria_covers_every_action() -> None:
    assert policy().covers(PROD_RESTART)
    assert policy().covers(Subject("anything", "default", "command:flush"))


def test_a_policy_covers_an_action_only_when_application_environment_and_kind_all_match() -> None:
    prod = policy(applications=["shop*"], environments=["prod*"], kinds=["restart", "stop"])
    assert prod.covers(PROD_RESTART)
    assert prod.covers(Subject("shop-api", "production", "stop"))
    assert not prod.covers(Subject("billing", "production", "restart"))
    assert not prod.covers(Subject("shop", "staging", "restart"))
    assert not prod.covers(Subject("shop", "production", "start"))


def test_commands_are_matched_as_command_and_their_name() -> None:
    assert kind_label("restart") == "restart"
    assert kind_label("command", "flush-cache") == "command:flush-cache"
    commands = policy(kinds=["command:flush-*"])
    assert commands.covers(Subject("shop", "production", "command:flush-cache"))
    assert not commands.covers(Subject("shop", "production", "command:reindex"))
    assert not commands.covers(PROD_RESTART)


def test_every_policy_that_covers_an_action_applies() -> None:
    everywhere = policy(name="all")
    prod = policy(name="prod", environments=["production"])
    staging = policy(name="staging", environments=["staging"])
    assert applicable([everywhere, prod, staging], PROD_RESTART) == (everywhere, prod)
    assert applicable([staging], PROD_RESTART) == ()


def test_a_request_is_open_for_the_shortest_time_of_its_policies() -> None:
    made = request(policy(open_for_s=3600), policy(open_for_s=600))
    assert (made.state, made.open_until, made.votes) == (
        ApprovalState.PENDING,
        T0 + timedelta(seconds=600),
        (),
    )


# Which votes count


def test_one_approval_by_someone_else_releases_a_four_eyes_request() -> None:
    after = counted(request(), ballot("alice"))
    assert (after.state, after.decided_by, after.decided_at) == (
        ApprovalState.APPROVED,
        "alice",
        T0,
    )
    assert [(v.approver, v.decision, v.via) for v in after.votes] == [
        ("alice", Decision.APPROVE, "token")
    ]


def test_the_requester_cannot_approve_their_own_action() -> None:
    no = refused(request(by="rita"), ballot("rita"))
    assert no == Refused(
        Refusal.FORBIDDEN, "rita requested action a1: someone else must approve it (four eyes)"
    )
    assert refused(request(by="rita"), ballot("rita", reject="no")).refusal is Refusal.FORBIDDEN


def test_two_required_approvals_need_two_different_people() -> None:
    two = request(policy(required=2))
    once = counted(two, ballot("alice"))
    assert once.state is ApprovalState.PENDING
    again = refused(once, ballot("alice"))
    assert again == Refused(
        Refusal.CONFLICT,
        "alice already approved action a1 at 2026-11-23T12:00:00+00:00: one vote per person",
    )
    assert counted(once, ballot("bob")).state is ApprovalState.APPROVED


def test_approvers_must_be_in_one_of_the_policys_groups() -> None:
    leads = request(policy(from_groups=["ops-leads", "sre"]))
    no = refused(leads, ballot("mallory", "developers"))
    assert no == Refused(
        Refusal.FORBIDDEN,
        "mallory (developers) is in none of the groups whose approval action a1 needs: "
        "ops-leads, sre",
    )
    assert counted(leads, ballot("olga", "sre")).state is ApprovalState.APPROVED


def test_every_policy_must_be_satisfied_and_one_approval_counts_toward_each_it_can() -> None:
    leads = policy(name="leads", from_groups=["ops-leads"], required=2)
    security = policy(name="security", from_groups=["security"])
    both = request(leads, security)
    after_olga = counted(both, ballot("olga", "ops-leads", "security"))
    assert [(p.policy.name, p.approved_by, p.satisfied) for p in after_olga.progress()] == [
        ("leads", ("olga",), False),
        ("security", ("olga",), True),
    ]
    # security is satisfied: someone who could only count toward it adds nothing
    assert refused(after_olga, ballot("sam", "security")).refusal is Refusal.FORBIDDEN
    assert counted(after_olga, ballot("otto", "ops-leads")).state is ApprovalState.APPROVED


def test_a_rejection_needs_a_reason_and_ends_the_request() -> None:
    assert refused(request(), ballot("alice", reject="   ")) == Refused(
        Refusal.INVALID, "a rejection needs a reason"
    )
    rejected = counted(request(policy(required=2)), ballot("alice", reject=" too risky "))
    assert (rejected.state, rejected.decided_by, rejected.reason) == (
        ApprovalState.REJECTED,
        "alice",
        "too risky",
    )


def test_no_vote_counts_once_the_request_is_decided() -> None:
    approved = counted(request(), ballot("alice"))
    rejected = counted(request(), ballot("alice", reject="not now"))
    cancelled = replace(request(), state=ApprovalState.CANCELLED, decided_by="rita")
    expired = replace(request(), state=ApprovalState.EXPIRED)
    reasons = [refused(a, ballot("bob")) for a in (approved, rejected, cancelled, expired)]
    assert reasons == [
        Refused(Refusal.CONFLICT, "action a1 is already approved (by alice)"),
        Refused(Refusal.CONFLICT, "action a1 was rejected by alice: not now"),
        Refused(Refusal.CONFLICT, "action a1 was cancelled by rita before a decision"),
        Refused(Refusal.CONFLICT, "the approval of action a1 expired at 2026-11-24T12:00:00+00:00"),
    ]


def test_a_request_past_its_open_time_is_expired_before_the_loop_marks_it() -> None:
    made = request(policy(open_for_s=60))
    late = T0 + timedelta(seconds=60)
    assert made.due(late) and not made.due(late - timedelta(microseconds=1))
    assert refused(made, ballot("alice"), late).reason == (
        "the approval of action a1 expired at 2026-11-23T12:01:00+00:00"
    )


def test_the_inbox_shows_only_requests_a_vote_would_count_toward() -> None:
    leads = request(policy(from_groups=["ops-leads"], required=2))
    assert leads.may_still_approve("olga", {"ops-leads"}, T0)
    assert not leads.may_still_approve("rita", {"ops-leads"}, T0)  # her own
    assert not leads.may_still_approve("mallory", set(), T0)
    voted = counted(leads, ballot("olga", "ops-leads"))
    assert not voted.may_still_approve("olga", {"ops-leads"}, T0)
    assert not leads.may_still_approve("olga", {"ops-leads"}, T0 + timedelta(days=2))


# Whatever the votes, four eyes hold

PEOPLE = ["rita", "alice", "bob", "carol"]
GROUPS = ["ops-leads", "sre", "dev"]


@given(
    policies=st.lists(
        st.builds(
            lambda required, groups: policy(required=required, from_groups=groups),
            st.integers(1, 3),
            st.lists(st.sampled_from(GROUPS), max_size=2, unique=True),
        ),
        min_size=1,
        max_size=3,
    ),
    ballots=st.lists(
        st.tuples(
            st.sampled_from(PEOPLE),
            st.frozensets(st.sampled_from(GROUPS)),
            st.sampled_from([None, "no"]),
        ),
        max_size=8,
    ),
)
def test_an_approved_request_has_enough_distinct_eligible_approvers_for_every_policy(
    policies: list[ApprovalPolicy], ballots: list[tuple[str, frozenset[str], str | None]]
) -> None:
    approval = request(*policies, by="rita")
    for name, groups, reject in ballots:
        verdict = judge(approval, ballot(name, *groups, reject=reject), T0)
        if isinstance(verdict, Counted):
            assert approval.state is ApprovalState.PENDING  # only an open request takes votes
            approval = verdict.approval
    voters = [v.approver for v in approval.votes]
    assert len(voters) == len(set(voters)) and "rita" not in voters
    if approval.state is ApprovalState.APPROVED:
        for p in policies:
            eligible = {
                v.approver
                for v in approval.votes
                if v.decision is Decision.APPROVE
                and (not p.from_groups or v.groups & set(p.from_groups))
            }
            assert len(eligible) >= p.required
    if any(v.decision is Decision.REJECT for v in approval.votes):
        assert approval.state is ApprovalState.REJECTED
