"""A new run: its request (who it acts for, what may be said of it), checked before anything
is written, and its row (``rt.start`` and ``rt.create`` alike; mixed into the Driver)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Required, TypedDict

from typing_extensions import Unpack

from agentrt.budget import Budget, empty_usage
from agentrt.errors import ConfigError, ThreadTaken
from agentrt.limits import SizeLimits
from agentrt.principal import Principal
from agentrt.records import AppIdentity, LeaseRecord, NewRun, RunRecord
from agentrt.runs.apps import recorded
from agentrt.runs.budgets import BudgetLayers
from agentrt.runs.lease import LeaseOwner
from agentrt.runs.record import initial_state
from agentrt.state import RunState, unstorable
from agentrt.store.protocols import Store
from agentrt.tracing import RunTracing, new_trace_id

__all__ = ["NewRunRequest", "RunCreating", "check_new_run"]


class NewRunRequest(TypedDict, total=False):
    """Who a new run acts for, and what may be said of it besides its goal."""

    principal: Required[Principal]
    """Who the run acts for: its roles, tenant and scopes."""
    budget: Budget | None
    """Limits over the runtime's and the tenant's (None: theirs)."""
    thread_id: str | None
    """The run's id; None for a new one. A given id must be new."""


def check_new_run(goal: str, request: NewRunRequest, limits: SizeLimits) -> None:
    """ConfigError naming the value, if the goal or the request cannot make a run."""
    principal = request.get("principal")
    budget = request.get("budget")
    thread_id = request.get("thread_id")
    if not isinstance(goal, str) or not goal.strip():
        raise ConfigError(f"a run needs a goal in words, got {goal!r}")
    if len(goal) > limits.goal_chars:
        raise ConfigError(
            f"the goal is {len(goal):,} characters, over the runtime's limit of "
            f"{limits.goal_chars:,} (SizeLimits.goal_chars); shorten it, or pass the "
            "material to a tool instead of the goal"
        )
    if "principal" not in request:
        raise ConfigError(
            "a run needs principal=, who it acts for; e.g. "
            "principal=Principal('alice', roles=['operator'], scopes=['orders:read'])"
        )
    if not isinstance(principal, Principal):
        raise ConfigError(
            f"principal must be an agentrt Principal, got {principal!r}; "
            "e.g. Principal('alice', roles=['operator'], scopes=['orders:read'])"
        )
    if budget is not None and not isinstance(budget, Budget):
        raise ConfigError(f"budget must be an agentrt Budget, got {budget!r}")
    if thread_id is not None and (not isinstance(thread_id, str) or not thread_id):
        raise ConfigError(f"thread_id must be a non-empty string or None, got {thread_id!r}")
    given = {"goal": goal, "principal": principal.to_dict(), "thread_id": thread_id}
    if problem := unstorable(given, "run"):
        raise ConfigError(f"this run cannot be stored: {problem}; pass text only")


class RunCreating:
    """Mixed into the Driver: writing a new run's row."""

    store: Store
    limits: SizeLimits
    budgets: BudgetLayers
    tracing: RunTracing
    new_id: Callable[[], str]
    app: AppIdentity | None
    graph: Callable[[], Any]

    if TYPE_CHECKING:  # the Driver's own

        def lease_for(self, owner: LeaseOwner) -> LeaseRecord: ...

    def _holds_state(self, thread_id: str) -> bool:
        """True if the run graph's checkpointer has a checkpoint of ``thread_id``."""
        saver = getattr(self.graph(), "checkpointer", None)
        if saver is None or isinstance(saver, bool):
            return False
        return (
            saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
            is not None
        )

    def create(
        self, goal: str, *, lease: LeaseRecord | None = None, **request: Unpack[NewRunRequest]
    ) -> tuple[str, RunState]:
        """Check a new run and write its row (status pending); its id and its first state.
        The run waits for whoever claims it; ``lease``: the row is born with this lease
        instead (an app's own graph drives the run)."""
        record = self.new_run(goal, lease=lease, **request)
        return record.thread_id, initial_state(record)

    def new_run(
        self, goal: str, *, lease: LeaseRecord | None = None, **request: Unpack[NewRunRequest]
    ) -> RunRecord:
        """``create``'s work: the row as written (which ``rt.create`` answers with)."""
        row = self.run_row(goal, lease=lease, **request)
        # An app's own graph writes the row of a thread its graph already holds (lease).
        return self.write_run(row, named=lease is None and bool(request.get("thread_id")))

    def run_row(
        self, goal: str, *, lease: LeaseRecord | None = None, **request: Unpack[NewRunRequest]
    ) -> NewRun:
        """A new run checked and named (its id, if the request has none), not written yet:
        ``rt.start`` names the run before a worker thread writes it, so that a caller
        cancelled meanwhile knows which run's lease to let go. No I/O."""
        check_new_run(goal, request, self.limits)
        principal = request.get("principal")
        effective = self.budgets.for_run(principal, request.get("budget"))
        self.budgets.check(effective, "the run's budget")
        app, tools = recorded(self.app)
        return NewRun(
            thread_id=request.get("thread_id") or self.new_id(),
            goal=goal,
            principal=principal.to_dict(),
            budget=effective.to_dict(),
            usage=empty_usage(),
            trace_id=new_trace_id(),
            lease=lease,
            app=app,
            tools=tools,
        )

    def write_run(
        self, row: NewRun, owner: LeaseOwner | None = None, *, named: bool = False
    ) -> RunRecord:
        """Write a new run's row, leased to ``owner`` from now if given (who drives it at
        once: no worker claims it meanwhile); ThreadTaken if its id names a run already,
        or (``named``: the caller gave the id) a graph's state with no run: a prune by an
        older agentrt, which deleted a run's row and its checkpoints in two steps, stopped
        between them, or another graph's thread shares the database. A run started there
        would go on from that state: the old run's log and conversation, another tenant's
        maybe, in its prompt."""
        if named and self.store.get_run(row.thread_id) is None and self._holds_state(row.thread_id):
            raise ThreadTaken(
                f"thread id {row.thread_id!r} names no run in {self.store.location!r} but "
                "holds a graph's state (left by an older agentrt's prune that stopped "
                "midway, or another graph's thread in this database); pass a new id, or None "
                "for a fresh one"
            )
        if owner is not None:
            row = replace(row, lease=self.lease_for(owner))  # the store's clock: its I/O
        record = self.store.create_run(row)
        if record is None:
            raise ThreadTaken(
                f"thread id {row.thread_id!r} already names a run in {self.store.location!r}; "
                "pass a new id (or None for a fresh one), or continue that run with "
                f"rt.resume({row.thread_id!r})"
            )
        self.tracing.metrics.run_started(record.tenant)
        return record
