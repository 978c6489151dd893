"""/runs: start runs, list and read them, join and resume them, their trace (their live
events: ``run_events``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response

from agentrt.budget import Budget
from agentrt.errors import ConfigError, ThreadTaken
from agentrt.principal import Principal
from agentrt.runtime import AgentRuntime, Run
from agentrt.service.auth import (
    Authenticating,
    Caller,
    HeaderKey,
    authenticate_then,
    current_service,
    key_from_request,
    service_of,
    unknown_key,
)
from agentrt.service.context import Service, acts_in_a_tenant, tenant_listed
from agentrt.service.paths import RUN, quoted
from agentrt.service.problems import Problem
from agentrt.service.schemas import RunIn, RunList, RunOut, run_out
from agentrt.state import TERMINAL, RunStatus

__all__ = ["CallersRun", "ServiceDep", "TenantRun", "acted_on", "going", "router", "shown_out"]

router = APIRouter(tags=["runs"])

T = TypeVar("T")

ServiceDep = Annotated[Service, Depends(current_service)]
"""The app's Service. The routes a run's caller and its monitors call (start, read, join)
take ``service_of(request)`` instead: each dependency FastAPI solves costs every request
(``auth.Authenticating``)."""


class _TenantRead(Authenticating, Generic[T]):
    """A dependency: the path's run as ``read`` gives it for the caller's principal (404
    for a run of another tenant), the key looked up and the run read in one trip to a
    worker thread (``authenticate_then``)."""

    def __init__(self, read: Callable[[Service, Principal, str], T]) -> None:
        super().__init__()
        self.read = read

    async def __call__(self, thread_id: str, request: Request, _header_key: HeaderKey) -> T:
        service = service_of(request)
        _, read = await authenticate_then(
            request,
            key_from_request(request),
            lambda key: self.read(service, key.principal, thread_id),
        )
        return read


TenantRun = Annotated[Run, Depends(_TenantRead(Service.read_run))]
"""The path's run, for a caller who reads it (or decides its requests). A route that
takes ``Caller`` too takes ``CallersRun`` instead, or it would count the key twice."""


async def _callers_run(thread_id: str, key: Caller, service: ServiceDep) -> Run:
    return await service.run_for(key.principal, thread_id)


CallersRun = Annotated[Run, Depends(_callers_run)]
"""``TenantRun`` for a route that takes ``Caller`` too, whose key it reads the run for."""


def acted_on(act: str) -> Any:
    """The dependency for a path's run that the caller will ``act`` on as itself ("send a
    message into a thread"): a run of its own tenant, never for a key of every tenant
    (``Service.run_acted_on``)."""

    async def acted_run(thread_id: str, key: Caller, service: ServiceDep) -> Run:
        return await service.run_acted_on(key.principal, thread_id, act)

    return Depends(acted_run)


async def shown_out(service: Service, run: Run, known: list[Any] | None = None) -> RunOut:
    """``run_out``, masked with ``known`` (what the run's log holds), else with what
    ``service.secrets`` kept of it, else read off the event loop."""
    driving = service.worker.driving(run.thread_id)
    if known is None:
        known = service.secrets.cached(run)
    if known is None:
        known = await asyncio.to_thread(service.secrets.known, run)
    return run_out(service.runtime, run, driving=driving, known=known)


@router.post("/runs", status_code=202, response_model=RunOut)
async def start_run(body: RunIn, key: Caller, request: Request, response: Response) -> RunOut:
    """Start a run for the caller; it is driven in the background. Poll it or follow its events.

    A ``budget`` can only tighten the limits the runtime and the caller's tenant set
    (``Budget.tightened``): each limit is the smaller of the two.
    """
    service = service_of(request)
    acts_in_a_tenant(key.principal, "start a run")
    rt = service.runtime
    _check_goal(body.goal, service.settings.max_goal_bytes)
    budget = None
    if body.budget is not None:
        asked = Budget.from_dict(body.budget.model_dump(exclude_none=True))
        budget = rt.budget_for(key.principal).tightened(asked)
    taken = Problem(
        409,
        # The same answer whoever holds the id: thread ids are one namespace across
        # tenants, and this must not tell another tenant's id from the caller's own.
        f"thread id {body.thread_id!r} is not available; start with another id (or none)",
        type="thread-id-taken",
    )
    try:
        run = await rt.acreate(
            body.goal, principal=key.principal, budget=budget, thread_id=body.thread_id
        )
    except ThreadTaken:
        # Refused by the write that would take the id, so two requests racing for one new
        # id get the same answer; never the store's own message (it names the server's file).
        raise taken from None
    service.worker.drive(run.thread_id)
    response.headers["Location"] = f"/runs/{quoted(run.thread_id)}"
    return await shown_out(service, run)


def _check_goal(goal: str, limit: int) -> None:
    size = len(goal.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise Problem(
            422,
            f"the goal is {size} bytes (UTF-8), over this service's limit of {limit}; say "
            "what the run should do in fewer words, and leave long material where a tool "
            "can read it",
            type="goal-too-long",
            max_goal_bytes=limit,
        )


@router.get("/runs", response_model=RunList)
async def list_runs(
    key: Caller,
    service: ServiceDep,
    status: Annotated[RunStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RunList:
    """The caller's tenant's runs, newest first."""
    rt = service.runtime
    runs = await asyncio.to_thread(
        rt.runs, status, tenant=tenant_listed(key.principal), limit=limit
    )
    driving = [service.worker.driving(r.thread_id) for r in runs]
    shown = await asyncio.to_thread(
        lambda: [
            run_out(rt, r, driving=d, known=service.secrets.known(r))
            for r, d in zip(runs, driving, strict=True)
        ]
    )
    return RunList(runs=shown)


def _shown(service: Service, principal: Principal, thread_id: str) -> tuple[Run, list[Any]]:
    """The run, and what its log holds to mask it with (kept for its row's state, or read
    in this same trip to the worker thread)."""
    run = service.read_run(principal, thread_id)
    return run, service.secrets.known(run)


@router.get(RUN, response_model=RunOut)
async def get_run(
    shown: Annotated[tuple[Run, list[Any]], Depends(_TenantRead(_shown))], request: Request
) -> RunOut:
    """One run: status, usage, budget, output, and the approvals it waits for."""
    run, known = shown
    return await shown_out(service_of(request), run, known)


GOING = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
"""The statuses a run leaves without anyone acting: what a join waits out."""

MAX_JOIN_SECONDS = 300.0


def _goes_on_alone(run: Run) -> bool:
    """True while the run as read goes on without anyone acting: it is pending or running,
    or its gate was decided and a worker is yet to carry it on."""
    return run.status in GOING or (
        run.status is RunStatus.AWAITING_APPROVAL and not run.pending_approvals
    )


async def going(run: Run, service: Service) -> bool:
    """True while the run goes on without anyone acting: it goes on alone
    (``_goes_on_alone``), this process has it in hand, or a message waits for whoever
    drives the thread next."""
    if _goes_on_alone(run) or service.worker.driving(run.thread_id):
        return True
    return await asyncio.to_thread(_message_waits, service.runtime, run)


def _message_waits(rt: AgentRuntime, run: Run) -> bool:
    """A message the thread takes once someone drives it: one queued on a finished
    thread, or one sent to interrupt a live one (not while a reconcile gate holds it: the
    effect in doubt is settled first, by a person)."""
    if run.status in TERMINAL:
        return rt.store.queued_message(run.thread_id) is not None
    _, interrupt = rt.store.stop_requests(run.thread_id)
    return interrupt and not any(r.kind == "reconcile" for r in run.pending_approvals)


@dataclass(frozen=True, slots=True)
class _Look:
    """A join's look at a run: the run as read, with what its answer needs, read in one
    trip to a worker thread."""

    run: Run
    waits: bool
    """A message waits for the thread (looked for only when the run does not go on alone)."""
    known: list[Any] | None
    """What its log holds, to mask it with (only once it does not go on alone)."""

    @classmethod
    def of(cls, service: Service, run: Run) -> _Look:
        if _goes_on_alone(run):
            return cls(run, False, None)
        return cls(run, _message_waits(service.runtime, run), service.secrets.known(run))


def _joined(service: Service, principal: Principal, thread_id: str) -> _Look:
    return _Look.of(service, service.read_run(principal, thread_id))


@router.get(f"{RUN}/join", response_model=RunOut)
async def join_run(
    look: Annotated[_Look, Depends(_TenantRead(_joined))],
    request: Request,
    timeout: Annotated[float, Query(gt=0, le=MAX_JOIN_SECONDS)] = 30.0,
) -> RunOut:
    """Wait until the run stops going (it ended, waits at a gate or to retry), at most
    ``timeout`` seconds, then answer as ``GET /runs/{id}`` does: one request for a run's
    outcome where polling makes many. A run still going at the timeout is answered as it
    is; join again.

    A run this process drives is answered as its segment ends; one another process drives
    (an ``agentrt worker``) is looked at every ``poll_interval``. Each look after the first
    looks the key up again (not counted against its rate): a key revoked while the join
    waits is answered 401, as its next request would be.
    """
    service = service_of(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    thread_id = look.run.thread_id
    rt = service.runtime
    given = key_from_request(request) or ""

    def look_again() -> _Look | None:
        if rt.keys.authenticate(given) is None:
            return None
        return _Look.of(service, rt.get(thread_id))

    while (_goes_on_alone(look.run) or service.worker.driving(thread_id) or look.waits) and (
        left := deadline - loop.time()
    ) > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                if service.worker.driving(thread_id):
                    await service.worker.wait(thread_id)  # until it lets the run go
                else:
                    await asyncio.sleep(service.settings.poll_interval)
        again = await asyncio.to_thread(look_again)
        if again is None:
            raise unknown_key(given)
        look = again
    return await shown_out(service, look.run, look.known)


@router.post(f"{RUN}/resume", status_code=202, response_model=RunOut)
async def resume_run(run: Annotated[Run, acted_on("resume a run")], service: ServiceDep) -> RunOut:
    """Carry a stopped run on (after a crash or a restart) in the background.

    409 if it has ended; a run waiting for a person goes on once the gate is decided. 403
    for a key of every tenant, which reads and decides but carries no run on.
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
    return await shown_out(service, run)


@router.get(f"{RUN}/trace")
async def run_trace(run: TenantRun, service: ServiceDep) -> dict[str, Any]:
    """The run's spans as a tree, with where the time went."""
    try:
        trace = await asyncio.to_thread(service.runtime.trace, run.thread_id)
    except ConfigError as exc:
        raise Problem(404, str(exc), type="no-trace") from None
    return trace.to_dict()
