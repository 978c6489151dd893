"""What a caller sees of a run: a Run snapshot, as the store has it now, and a Sweep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from agentrt.approvals.model import ApprovalQuery, ApprovalRequest
from agentrt.budget import Budget, empty_usage
from agentrt.errors import ConfigError
from agentrt.principal import Principal
from agentrt.records import RunRecord
from agentrt.state import TERMINAL, BudgetReport, RunState, RunStatus, Usage
from agentrt.store.protocols import ApprovalStore

__all__ = ["Run", "Sweep", "initial_state", "run_of", "status_named"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Run:
    """A snapshot of one run, as the store has it now."""

    thread_id: str
    """The run's identity; resume it with this."""
    status: RunStatus
    """Where the run is; see agentrt.state.TRANSITIONS."""
    goal: str
    """What the run was asked to do."""
    principal: Principal
    """Who the run acts for."""
    output: str | None
    """The final answer, once succeeded."""
    error: str | None
    """Why the run failed or stopped, if it did."""
    usage: Usage
    """What the run has spent."""
    budget: Budget
    """The limits in force: the runtime's, the tenant's and the run's, layered."""
    budget_report: BudgetReport | None
    """If a limit stopped the run: which, the usage, and the action it stopped before."""
    pending_approval: ApprovalRequest | None
    """The (first) request a person must decide before the run goes on."""
    created_at: float
    """Epoch seconds."""
    updated_at: float
    """Epoch seconds of the last status change."""
    pending_approvals: tuple[ApprovalRequest, ...] = ()
    """Every request of the gate the run waits at, one per action; it resumes when each
    is decided."""
    cancel_requested: str | None = None
    """Set when a cancel was asked while another process drove the run: the reason. The
    run ends cancelled at its next step."""
    retry_at: float | None = None
    """For status waiting_retry: when it may go on (resume carries it on at any time)."""
    message: int = 0
    """The thread's message the run is answering (or answered last): 0 its goal, then each
    follow-up (``rt.send``); ``rt.messages`` lists them."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Sweep:
    """What one rt.sweep_approvals() did."""

    expired: tuple[ApprovalRequest, ...]
    """Requests this sweep expired, as they were just before."""
    escalated: tuple[ApprovalRequest, ...]
    """New requests made because an expired one's rule said escalate."""
    runs: tuple[Run, ...]
    """The runs of the expired requests, as they are after being carried on."""


def run_of(record: RunRecord, approvals: ApprovalStore) -> Run:
    """The Run a row describes; a run at a gate lists its pending requests in plan order."""
    waiting: list[ApprovalRequest] = []
    if record.status is RunStatus.AWAITING_APPROVAL:
        waiting = approvals.list_approvals(ApprovalQuery(thread_id=record.thread_id, limit=1000))
        waiting.sort(key=_step_order)
    return Run(
        thread_id=record.thread_id,
        status=record.status,
        goal=record.goal,
        principal=Principal.from_dict(record.principal),
        output=record.output,
        error=record.error,
        usage=_with_waited(record.usage, record.waited_seconds, record.retry_waited_seconds),
        budget=Budget.from_dict(record.budget),
        budget_report=cast(BudgetReport | None, record.budget_report),
        pending_approval=waiting[0] if waiting else None,
        created_at=record.created_at,
        updated_at=record.updated_at,
        pending_approvals=tuple(waiting),
        cancel_requested=None if record.status in TERMINAL else record.cancel_requested,
        retry_at=record.retry_at if record.status is RunStatus.WAITING_RETRY else None,
        message=record.message,
    )


def initial_state(record: RunRecord) -> RunState:
    """The graph state a run starts from: everything comes from its row."""
    return RunState(
        thread_id=record.thread_id,
        goal=record.goal,
        principal=record.principal,
        budget=record.budget,
        status=RunStatus.RUNNING.value,
        plan=None,
        cursor=0,
        verdict=None,
        outcome=None,
        usage=empty_usage(),
        output=None,
        error=None,
        stop=None,
        over_budget=None,
        events=[],
    )


def status_named(value: RunStatus | str) -> RunStatus:
    """``value`` as a RunStatus; ConfigError naming the statuses for anything else."""
    try:
        return RunStatus(value)
    except ValueError:
        raise ConfigError(
            f"unknown run status {value!r}; use one of {[s.value for s in RunStatus]!r}"
        ) from None


def _with_waited(usage: Usage, waited: float, retry_waited: float) -> Usage:
    """The run's usage with its time at human gates, once it has waited at one, and its
    time waiting to retry after failures that may pass."""
    if waited:
        usage = {**usage, "waited_seconds": waited}
    if retry_waited:
        usage = {**usage, "retry_waited_seconds": retry_waited}
    return usage


def _step_order(request: ApprovalRequest) -> tuple[tuple[int, int | str], ...]:
    """Plan order of a request's step id ('2.10' after '2.9')."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in request.step_id.split("."))
