"""Votes on approval requests: which request, whose vote, and what follows.

The API asks first whether the caller holds `approve` on the application's scope
(server/api/approval_routes.py). Everything else about a vote — not the requester's own, one per
person, from the policy's groups, only while the request is open — is judged against the request
as recorded (drover.model.approval) inside the transaction that records it (store/approvals.py).
A refused vote changes nothing and goes on the audit trail as `approval.refused`, with why. An
approval that satisfies the request releases its action, and wakes the orchestrator to send it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from drover.model.access import Permission, Principal
from drover.model.approval import (
    Approval,
    ApprovalState,
    Ballot,
    Decision,
    Refusal,
    Refused,
)
from drover.ops.clock import Clock
from drover.server.errors import Conflict, Forbidden, NotFound, ServerError, Unprocessable
from drover.store.actions import ActionStore
from drover.store.approvals import ApprovalStore
from drover.store.audit import AuditEntry, AuditLog

log = logging.getLogger(__name__)

_ERRORS: dict[Refusal, type[ServerError]] = {
    Refusal.FORBIDDEN: Forbidden,
    Refusal.CONFLICT: Conflict,
    Refusal.INVALID: Unprocessable,
}


class Approvals:
    def __init__(
        self,
        store: ApprovalStore,
        actions: ActionStore,
        audit: AuditLog,
        clock: Clock,
        released: Callable[[], None],
    ) -> None:
        self._store = store
        self._actions = actions
        self._audit = audit
        self._clock = clock
        self._released = released  # wakes the orchestrator

    async def request_of(self, action_id: str) -> Approval:
        """The action's request; NotFound without such an action, Conflict when it needs no
        approval."""
        approval = await self._store.get(action_id)
        if approval is not None:
            return approval
        if await self._actions.get(action_id) is None:
            raise NotFound(f"no action {action_id!r}")
        raise Conflict(f"action {action_id} needs no approval: no approval policy covered it")

    async def decide(
        self, action_id: str, caller: Principal, decision: Decision, comment: str = ""
    ) -> Approval:
        """Cast the caller's vote. Raises Forbidden, Conflict or Unprocessable with the reason
        when it does not count; the request as it is after the vote otherwise."""
        ballot = Ballot(caller.name, caller.groups, decision, comment, caller.via[:64])
        if decision is Decision.APPROVE and not caller.own_credential:
            # Someone else (an admin) set this password or made this token: they could vote
            # as the caller, and one person would satisfy four eyes.
            refused = Refused(
                Refusal.FORBIDDEN,
                f"approve with a credential you set yourself: {caller.not_own_credential}",
            )
            await self._refused(action_id, ballot, refused)
            raise Forbidden(refused.reason)
        now = self._clock.now()
        verdict = await self._store.vote(action_id, ballot, now)
        if verdict is None:
            await self.request_of(action_id)  # raises: no action, or none needed
            raise Conflict(f"action {action_id} needs no approval")  # gone meanwhile
        if isinstance(verdict, Refused):
            await self._refused(action_id, ballot, verdict)
            raise _ERRORS[verdict.refusal](verdict.reason)
        approval = verdict.approval
        log.info(
            "action %s: %s by %s (%s), request now %s",
            action_id,
            decision,
            caller.name,
            caller.via,
            approval.state,
        )
        if approval.state is ApprovalState.APPROVED:
            self._released()
        return approval

    async def inbox(self, caller: Principal, state: ApprovalState | None) -> list[Approval]:
        """With no state: the pending requests the caller may still approve, oldest deadline
        first. With one: the requests in that state on applications the caller may read."""
        now = self._clock.now()
        if state is None:
            pending = await self._store.find(ApprovalState.PENDING)
            mine = [
                a
                for a in pending
                if _may(caller, Permission.APPROVE, a)
                and a.may_still_approve(caller.name, caller.groups, now)
            ]
            return sorted(mine, key=lambda a: (a.open_until, a.action_id))
        return [a for a in await self._store.find(state) if _may(caller, Permission.READ, a)]

    async def _refused(self, action_id: str, ballot: Ballot, refused: Refused) -> None:
        """A vote that did not count is worth knowing about: it may be a try at getting round
        the four eyes."""
        detail = {
            "decision": ballot.decision.value,
            "reason": refused.reason,
            "refusal": refused.refusal.value,
            "via": ballot.via,
        }
        entry = AuditEntry(
            ballot.approver, "approval.refused", action_id, self._clock.now(), detail
        )
        await self._audit.record(entry)
        log.warning("action %s: %s refused: %s", action_id, ballot.decision, refused.reason)


def _may(caller: Principal, permission: Permission, approval: Approval) -> bool:
    # The request's own record of the application's environment: the one its policies matched.
    return caller.may(permission, approval.subject.application, approval.subject.environment)
