"""/runs: start runs, list and read them, resume them, their trace and live events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from agentrt.approvals import masked
from agentrt.budget import Budget
from agentrt.errors import ConfigError
from agentrt.runtime import Run
from agentrt.service.auth import Caller, service_of
from agentrt.service.context import Service
from agentrt.service.problems import Problem
from agentrt.service.schemas import RunIn, RunList, RunOut, run_out
from agentrt.state import TERMINAL, RunStatus

__all__ = ["router"]

router = APIRouter(tags=["runs"])

ServiceDep = Annotated[Service, Depends(service_of)]


async def _tenant_run(thread_id: str, key: Caller, service: ServiceDep) -> Run:
    return await service.run_for(key.principal, thread_id)


TenantRun = Annotated[Run, Depends(_tenant_run)]


def _out(service: Service, run: Run) -> RunOut:
    return run_out(service.runtime, run, driving=service.worker.driving(run.thread_id))


@router.post("/runs", status_code=202, response_model=RunOut)
async def start_run(body: RunIn, key: Caller, service: ServiceDep, response: Response) -> RunOut:
    """Start a run for the caller; it is driven in the background. Poll it or follow its events."""
    budget = None
    if body.budget is not None:
        budget = Budget.from_dict(body.budget.model_dump(exclude_none=True))
    rt = service.runtime
    if (
        body.thread_id is not None
        and (await asyncio.to_thread(rt.store.get_run, body.thread_id)) is not None
    ):
        # (Two requests racing for one new id: the loser gets the store's 422.)
        raise Problem(
            409,
            f"thread id {body.thread_id!r} is taken; start with another id (or none)",
            type="thread-id-taken",
        )
    run = await rt.acreate(
        body.goal, principal=key.principal, budget=budget, thread_id=body.thread_id
    )
    service.worker.drive(run.thread_id)
    response.headers["Location"] = f"/runs/{run.thread_id}"
    return _out(service, run)


@router.get("/runs", response_model=RunList)
async def list_runs(
    key: Caller,
    service: ServiceDep,
    status: Annotated[RunStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RunList:
    """The caller's tenant's runs, newest first."""
    runs = await asyncio.to_thread(
        service.runtime.runs, status, tenant=key.principal.tenant, limit=limit
    )
    return RunList(runs=[_out(service, r) for r in runs])


@router.get("/runs/{thread_id}", response_model=RunOut)
async def get_run(run: TenantRun, service: ServiceDep) -> RunOut:
    """One run: status, usage, budget, output, and the approvals it waits for."""
    return _out(service, run)


@router.post("/runs/{thread_id}/resume", status_code=202, response_model=RunOut)
async def resume_run(run: TenantRun, service: ServiceDep) -> RunOut:
    """Carry a stopped run on (after a crash or a restart) in the background.

    409 if it has ended; a run waiting for a person goes on once the gate is decided.
    """
    if run.status in TERMINAL:
        raise Problem(
            409,
            f"run {run.thread_id!r} already ended ({run.status.value}); nothing to resume",
            type="run-ended",
        )
    if run.status is RunStatus.AWAITING_APPROVAL and run.pending_approvals:
        raise Problem(
            409,
            f"run {run.thread_id!r} waits for a decision on {run.pending_approvals[0].id!r}; "
            "decide it with POST /approvals/{id}/decision and the run goes on",
            type="awaiting-approval",
        )
    service.worker.drive(run.thread_id)
    return _out(service, run)


@router.get("/runs/{thread_id}/trace")
async def run_trace(run: TenantRun, service: ServiceDep) -> dict[str, Any]:
    """The run's spans as a tree, with where the time went."""
    try:
        trace = await asyncio.to_thread(service.runtime.trace, run.thread_id)
    except ConfigError as exc:
        raise Problem(404, str(exc), type="no-trace") from None
    return trace.to_dict()


@router.get("/runs/{thread_id}/events", response_class=EventSourceResponse)
async def run_events(
    run: TenantRun,
    service: ServiceDep,
    request: Request,
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: the run's event log as it grows, and each status change.

    Each log entry is an event named for its type (plan, policy, approval, observation,
    finish...) with its index as id, so a client that reconnects with Last-Event-ID gets
    only what it missed. ``status`` events carry the whole run. The stream ends when the
    run does. Sensitive tool arguments are masked.
    """
    rt = service.runtime
    sensitive = {field for spec in rt.tools for field in spec.sensitive}
    sent = int(last_event_id) + 1 if last_event_id and last_event_id.isdigit() else 0
    status: RunStatus | None = None
    thread_id = run.thread_id
    while True:
        log = await asyncio.to_thread(rt.events, thread_id)
        for index in range(sent, len(log)):
            event = log[index]
            yield ServerSentEvent(
                data=masked(dict(event), sensitive), event=event["type"], id=str(index)
            )
        sent = max(sent, len(log))
        current = await asyncio.to_thread(rt.get, thread_id)
        if current.status is not status:
            status = current.status
            yield ServerSentEvent(data=_out(service, current).model_dump(), event="status")
        if status in TERMINAL or await request.is_disconnected():
            return
        await asyncio.sleep(service.settings.poll_interval)
