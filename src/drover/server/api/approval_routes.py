"""The four-eyes routes: approve, reject, and the approvals inbox.

Every refusal is a 4xx that says why: 403 for who may not (no `approve` on the application,
the requester themself, not in the policy's groups), 409 for when not (already approved,
rejected, expired or cancelled; a second vote by the same person), 422 for a rejection without
a reason.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from drover.model.access import Permission
from drover.model.approval import ApprovalState, Decision
from drover.server.api.access import Caller, authorize
from drover.server.api.deps import Ctx
from drover.server.api.schemas import (
    ActionId,
    ActionOut,
    ApprovalOut,
    ApproveIn,
    ErrorOut,
    RejectIn,
)
from drover.server.api.views import action_view, approval_view
from drover.server.errors import NotFound

REFUSALS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (403, 404, 409, 422)
}

approvals = APIRouter(prefix="/api/v1", tags=["approvals"])


@approvals.post("/actions/{action_id}/approve", response_model=ActionOut, responses=REFUSALS)
async def approve_action(
    action_id: ActionId, ctx: Ctx, caller: Caller, body: ApproveIn | None = None
) -> ActionOut:
    """Approve an action held for approval; the last approval it needs releases it."""
    comment = (body or ApproveIn()).comment
    return await _decide(ctx, caller, action_id, Decision.APPROVE, comment)


@approvals.post("/actions/{action_id}/reject", response_model=ActionOut, responses=REFUSALS)
async def reject_action(action_id: ActionId, body: RejectIn, ctx: Ctx, caller: Caller) -> ActionOut:
    """Reject an action held for approval: it never runs, and its hosts are skipped."""
    return await _decide(ctx, caller, action_id, Decision.REJECT, body.reason)


@approvals.get("/approvals", response_model=list[ApprovalOut])
async def list_approvals(
    ctx: Ctx,
    caller: Caller,
    state: Annotated[
        ApprovalState | None,
        Query(description="all requests in this state; default: those you may still approve"),
    ] = None,
) -> list[ApprovalOut]:
    """The approvals inbox: pending requests the caller may still approve (not their own, not
    yet voted on, in their scope and groups); or every request in `state` they may read."""
    return [approval_view(a) for a in await ctx.approvals.inbox(caller, state)]


async def _decide(
    ctx: Ctx, caller: Caller, action_id: str, decision: Decision, comment: str
) -> ActionOut:
    approval = await ctx.approvals.request_of(action_id)
    # The scope is the application's environment when it was requested: what the policies
    # matched, even if the config has moved it since.
    await authorize(
        ctx,
        caller,
        Permission.APPROVE,
        approval.subject.application,
        environment=approval.subject.environment,
    )
    await ctx.approvals.decide(action_id, caller, decision, comment)
    action = await ctx.store.get(action_id)
    if action is None:
        raise NotFound(f"no action {action_id!r}")
    return action_view(action)
