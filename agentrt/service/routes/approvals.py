"""/approvals: the caller's tenant's review queue, and deciding a request."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from agentrt.approvals import ApprovalRequest, ApprovalStatus, Decision
from agentrt.principal import Principal
from agentrt.service.auth import Caller, current_service
from agentrt.service.context import Service, tenant_listed
from agentrt.service.problems import Problem
from agentrt.service.schemas import (
    ApprovalList,
    ApprovalOut,
    DecisionIn,
    DecisionOut,
    approval_out,
    run_out,
)

__all__ = ["decision_of", "router"]

router = APIRouter(tags=["approvals"])

ServiceDep = Annotated[Service, Depends(current_service)]


@router.get("/approvals", response_model=ApprovalList)
async def list_approvals(
    key: Caller,
    service: ServiceDep,
    status: Annotated[ApprovalStatus | None, Query()] = ApprovalStatus.PENDING,
    role: Annotated[str | None, Query(description="Only requests needing this role.")] = None,
    thread_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the page before.")] = None,
) -> ApprovalList:
    """The review queue of the caller's tenant, oldest first, one page at a time."""
    rt = service.runtime
    page = await asyncio.to_thread(
        rt.approvals,
        status,
        tenant=tenant_listed(key.principal),
        role=role,
        thread_id=thread_id,
        limit=limit,
        cursor=cursor,
    )
    return ApprovalList(approvals=[approval_out(rt, r) for r in page], next_cursor=page.next_cursor)


@router.get("/approvals/{approval_id}", response_model=ApprovalOut)
async def get_approval(approval_id: str, key: Caller, service: ServiceDep) -> ApprovalOut:
    """One request, whatever its status."""
    request = await service.approval_for(key.principal, approval_id)
    return approval_out(service.runtime, request)


@router.post("/approvals/{approval_id}/decision", response_model=DecisionOut)
async def decide(
    approval_id: str, body: DecisionIn, key: Caller, service: ServiceDep
) -> DecisionOut:
    """Decide a request as the caller: approve, reject, edit (or resolve, retry, raise_limit).

    The runtime checks it exactly as ``rt.decide`` does (role, four eyes, expiry, digest,
    arguments against the tool's schema); a refused decision changes nothing. An accepted
    one is recorded before the answer, and the run goes on in the background.
    """
    rt = service.runtime
    request = await service.approval_for(key.principal, approval_id)
    decision = decision_of(request, body, key.principal)
    run = await rt.adecide(decision, resume=False)
    service.worker.drive(run.thread_id)
    decided = await asyncio.to_thread(rt.approval, approval_id)
    driving = service.worker.driving(run.thread_id)
    known = await asyncio.to_thread(service.secrets.known, run)  # it may read the log
    shown = run_out(rt, run, driving=driving, known=known)
    return DecisionOut(approval=approval_out(rt, decided), run=shown)


def decision_of(request: ApprovalRequest, body: DecisionIn, by: Principal) -> Decision:
    """The runtime's Decision for a decision sent over HTTP, made by ``by``."""
    if body.outcome == "raise_limit":
        if request.kind != "budget" or body.to is None:
            raise Problem(
                422,
                "raise_limit answers a budget request and needs 'to', the limit's new value; "
                f"{request.id!r} is a {request.kind} request",
                type="invalid-decision",
            )
        return Decision.raise_limit(
            request.id, limit=request.args["limit"], to=body.to, by=by, reason=body.reason
        )
    if body.to is not None:
        raise Problem(422, "'to' belongs to a raise_limit decision only", type="invalid-decision")
    fields = body.model_dump(exclude_unset=True, exclude={"outcome", "to"})
    return Decision.parse({"approval_id": request.id, "outcome": body.outcome, "by": by, **fields})
